// The notification preferences page (#/preferences): a grid of events by in-app / email /
// sound, per-channel rows, quiet hours, and this browser's sound settings. Admins also get
// the organisation's defaults (GET|PUT /api/org/preferences), the same grid; admin.js
// embeds it as well.
//
// Every setting's menu starts with "Default (…)": picking it drops the user's own choice,
// so the value is inherited again from the organisation or the factory. The server sends
// only resolved values with their source; the document PUT back holds the explicit ones.

import { request } from './api.js';
import { h, setText } from './dom.js';
import { SOUNDS, preview, enableSound, disableSound, soundWanted, repeatWanted, setRepeat } from './sound.js';
import { card, check, errorLine, statusLine, field, select, run, uid, pageHead } from './admin-ui.js';

/** EVENTS: the contract's event keys (DESIGN.md, "Notifications") with their meaning. */
export const EVENTS = [
  ['assigned', 'Assigned to me', 'I’m assigned to an issue'],
  ['mentioned', 'Mentioned', 'I’m mentioned in a note'],
  ['team_mentioned', 'Team mentioned', 'a team I’m on is mentioned in a note'],
  ['direct_message', 'Direct message', 'a direct message to me'],
  ['note', 'Note', 'someone adds a note to an issue I’m assigned to or a customer I follow'],
  ['issue_message', 'Message in my issue', 'a new message arrives in an issue I’m assigned to'],
  ['unsnoozed', 'Back from snooze', 'an issue I’m assigned to comes back from snooze'],
  ['sla_breached', 'SLA breached', 'an SLA is breached on an issue I’m assigned to'],
  ['followed_customer_message', 'Followed customer writes', 'a customer I follow sends a message'],
  ['followed_customer_issue', 'Followed customer’s issue', 'an issue is created or updated for a customer I follow'],
  ['customer_message', 'Any customer message', 'a customer sends any message (per channel below)'],
  ['issue_created', 'New issue', 'a customer starts a new issue (per channel below)'],
];
const CHANNEL_EVENTS = [['customer_message', 'Customer message'], ['issue_created', 'New issue']];
const FREQ = [['always', 'Always'], ['when_logged_out', 'Logged out'], ['never', 'Never']];
const SOUND_OPTS = [['none', 'No sound'], ...SOUNDS.map((s) => [s, s[0].toUpperCase() + s.slice(1)])];
const NONE = 'none'; // the menu's "No sound"; null in the API

const label = (opts, v) => (opts.find(([k]) => k === v) || [v, v == null ? 'No sound' : String(v)])[1];

// at reads one setting as {value, source, own}: the resolved value at path in the GET
// answer, and where it came from in the parallel "source" map (user, user_channel, org,
// org_channel, factory). own: set at the level this grid edits.
function at(doc, path, org) {
  let v = doc;
  let s = doc.source;
  for (const p of path) {
    v = v?.[p];
    s = s?.[p];
  }
  const own = (org ? 'org' : 'user') + (path[0] === 'channels' ? '_channel' : '');
  return { value: v, source: typeof s === 'string' ? s : undefined, own: s === own };
}

const RANK = ['user', 'org_channel', 'org', 'factory']; // the strongest inherited source names a row
const SOURCE_NAMES = {
  user: 'from your event settings', user_channel: 'your choice', org: 'organisation default',
  org_channel: 'organisation default', factory: 'factory default',
};

/**
 * renderPrefsGrid draws the grid for one document into container: org=false for the
 * user's own (/api/preferences), true for the organisation's. Returns a cleanup.
 */
export function renderPrefsGrid(container, ctx, org) {
  const ac = new AbortController();
  const path = org ? '/api/org/preferences' : '/api/preferences';
  const form = h('form', { id: org ? 'org-prefs-form' : 'prefs-form', class: 'prefs-form', novalidate: true });
  const err = errorLine();
  err.id = org ? 'org-prefs-error' : 'prefs-error';
  const ok = statusLine();
  ok.id = org ? 'org-prefs-status' : 'prefs-status';
  const save = h('button', { type: 'submit', class: 'btn btn-primary', id: org ? 'org-prefs-save' : 'prefs-save', text: 'Save' });
  const body = h('div', { class: 'prefs-body' }, h('p', { class: 'pg-muted', text: 'Loading…' }));
  form.append(body, h('div', { class: 'pg-actions prefs-actions' }, save, ok, err));
  container.append(form);
  let controls = []; // {el, path, orig, inherited, at} for each setting's menu
  let qh = null;

  // settingSelect: one setting's menu, starting with the inherited default.
  function settingSelect(opts, doc, path, aria) {
    const a = at(doc, path, org);
    const name = path.join('.');
    const inheritedText = !a.own && a.value !== undefined ? `Default: ${label(opts, a.value)}` : 'Default';
    const cur = a.own ? (a.value == null ? NONE : a.value) : '';
    const el = select([['', inheritedText], ...opts], cur, { name, 'aria-label': aria, dataset: { source: a.source || '' } });
    el.classList.toggle('is-default', cur === '');
    el.addEventListener('change', () => el.classList.toggle('is-default', el.value === ''));
    controls.push({ el, path, orig: cur, inherited: a.own ? undefined : a.value, at: a });
    return el;
  }

  function playButton(sel, name) {
    const b = h('button', { type: 'button', class: 'btn btn-small play', 'aria-label': `Play the sound for ${name}`, title: 'Play', text: '▶' });
    b.addEventListener('click', () => {
      const c = controls.find((x) => x.el === sel);
      const s = sel.value === '' ? c?.inherited : sel.value;
      if (!s || s === NONE) {
        setText(ok, 'No sound chosen here.');
        return;
      }
      if (preview(s)) {
        b.dataset.playing = s;
        setTimeout(() => delete b.dataset.playing, 1200);
      }
    });
    return b;
  }

  function resetButton(sels, what) {
    const b = h('button', { type: 'button', class: 'btn btn-quiet btn-small', text: 'Reset', title: `Use the defaults for ${what}` });
    b.addEventListener('click', () => {
      for (const s of sels) {
        s.value = '';
        s.classList.add('is-default');
      }
    });
    return b;
  }

  function srcTag(sels) {
    const ats = sels.map((el) => controls.find((c) => c.el === el).at);
    if (ats.some((a) => a.own)) return h('span', { class: 'src-tag src-own', text: org ? 'set by admin' : 'your choice' });
    const s = RANK.find((r) => ats.some((a) => a.source === r));
    return h('span', { class: 'src-tag', text: SOURCE_NAMES[s] || 'default' });
  }

  // channelRow: the channel events (customer channels only) and the channel's sound.
  function channelRow(doc, ch) {
    const customer = !ch.kind || ch.kind === 'sms' || ch.kind === 'email';
    const sels = [];
    const cells = CHANNEL_EVENTS.map(([ev, evName]) => h('td', { dataset: { label: evName } }, customer
      ? h('span', { class: 'prefs-pair' }, ['in_app', 'email'].map((f) => {
        const s = settingSelect(FREQ, doc, ['channels', String(ch.id), ev, f], `${ch.name}: ${evName}, ${f === 'in_app' ? 'in-app' : 'email'}`);
        sels.push(s);
        return h('span', { class: 'prefs-pair-item' }, h('small', { text: f === 'in_app' ? 'In-app' : 'Email' }), s);
      }))
      : h('span', { class: 'pg-muted', text: '—' })));
    const snd = settingSelect(SOUND_OPTS, doc, ['channels', String(ch.id), 'sound'], `${ch.name}: sound for new messages`);
    sels.push(snd);
    return h('tr', { dataset: { channelId: ch.id } },
      h('th', { scope: 'row' }, h('span', { class: 'prefs-name', text: ch.name }), srcTag(sels)), cells,
      h('td', { dataset: { label: 'Sound' } }, h('span', { class: 'prefs-sound' }, snd, playButton(snd, ch.name))),
      h('td', null, resetButton(sels, ch.name)));
  }

  function draw(doc) {
    controls = [];
    const evRows = EVENTS.map(([key, name, desc]) => {
      const sels = [
        settingSelect(FREQ, doc, ['events', key, 'in_app'], `${name}: in-app`),
        settingSelect(FREQ, doc, ['events', key, 'email'], `${name}: email`),
        settingSelect(SOUND_OPTS, doc, ['events', key, 'sound'], `${name}: sound`),
      ];
      return h('tr', { dataset: { event: key } },
        h('th', { scope: 'row' }, h('span', { class: 'prefs-name', text: name }), h('span', { class: 'prefs-desc', text: desc }), srcTag(sels)),
        h('td', { dataset: { label: 'In-app' } }, sels[0]),
        h('td', { dataset: { label: 'Email' } }, sels[1]),
        h('td', { dataset: { label: 'Sound' } }, h('span', { class: 'prefs-sound' }, sels[2], playButton(sels[2], name))),
        h('td', null, resetButton(sels, name)));
    });
    const head = (cols) => h('thead', null, h('tr', null, cols.map((c) => h('th', { scope: 'col', text: c }))));
    const grid = h('div', { class: 'pg-table-wrap' }, h('table', { class: 'pg-table prefs-grid', id: org ? 'org-prefs-events' : 'prefs-events' },
      head(['Event', 'In-app', 'Email', 'Sound', '']), h('tbody', null, evRows)));

    // The server names the channels to show; the app's list, when loaded, gives their
    // names, kinds and order.
    const known = new Map((ctx.channels() || []).map((c, i) => [String(c.id), { ...c, i }]));
    const chRows = Object.keys(doc.channels || {})
      .map((id) => known.get(id) || { id, name: `Channel ${id}`, i: Infinity })
      .sort((a, b) => a.i - b.i || a.id - b.id)
      .map((ch) => channelRow(doc, ch));
    const chGrid = chRows.length
      ? h('div', { class: 'pg-table-wrap' }, h('table', { class: 'pg-table prefs-grid', id: org ? 'org-prefs-channels' : 'prefs-channels' },
        head(['Channel', 'Customer message', 'New issue', 'Sound for new messages', '']), h('tbody', null, chRows)))
      : h('p', { class: 'pg-muted', text: 'No channels yet.' });

    const parts = [
      card(org ? 'Organisation defaults' : 'Events', h('p', { class: 'pg-lead', text: (org
        ? 'What everyone gets unless they choose otherwise; a person’s own choice wins. '
        : '') + '“Logged out”: only while no Switchboard tab is open, or after being idle a while.' }), grid),
      card('Channels', h('p', { class: 'pg-lead', text: 'Per channel, these replace the rows “Any customer message” and “New issue” above. Sounds play with in-app notifications.' }), chGrid),
    ];
    qh = null;
    if (!org) parts.push(quietHours(doc.quiet_hours || {}, doc.source?.quiet_hours === 'user'));
    body.replaceChildren(...parts);
  }

  function quietHours(q, own) {
    const on = check('Hold sounds and emails during quiet hours', q.enabled, { id: 'qh-enabled' });
    const start = h('input', { type: 'time', id: 'qh-start', value: q.start || '22:00', required: true });
    const end = h('input', { type: 'time', id: 'qh-end', value: q.end || '07:00', required: true });
    const browserTZ = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
    let zones = [];
    try { zones = Intl.supportedValuesOf('timeZone'); } catch { zones = [browserTZ, 'UTC']; }
    const tz = (own && q.time_zone) || browserTZ;
    if (!zones.includes(tz)) zones = [tz, ...zones];
    const zone = select(zones.map((z) => [z, z.replaceAll('_', ' ')]), tz, { id: 'qh-zone' });
    const mentions = check('Let mentions through', q.allow_mentions, { id: 'qh-mentions' });
    qh = { on: on.box, start, end, zone, mentions: mentions.box };
    qh.orig = own ? '' : JSON.stringify(quietValue());
    return card('Quiet hours',
      h('p', { class: 'pg-lead', text: 'Sounds and emails wait until quiet hours end; then they arrive together.' }),
      on.el,
      h('div', { class: 'pg-row' }, field('From', start), field('Until', end), field('Time zone', zone, `This browser: ${browserTZ}`)),
      mentions.el);
  }

  const quietValue = () => ({
    enabled: qh.on.checked, start: qh.start.value, end: qh.end.value,
    time_zone: qh.zone.value, allow_mentions: qh.mentions.checked,
  });

  // patch builds what to PUT: explicit choices; a choice reset to default is null, but
  // for a sound null is "no sound", so a sound resets with "inherit".
  function patch() {
    const doc = { events: {}, channels: {} };
    for (const c of controls) {
      const v = c.el.value;
      if (v === '' && c.orig === '') continue; // inherited before and after
      let at = doc;
      for (const p of c.path.slice(0, -1)) at = at[p] ??= {};
      const field = c.path.at(-1);
      at[field] = v === '' ? (field === 'sound' ? 'inherit' : null) : v === NONE ? 'none' : v;
    }
    // Quiet hours untouched stay inherited (the factory's, shown in this browser's zone).
    if (qh && JSON.stringify(quietValue()) !== qh.orig) doc.quiet_hours = quietValue();
    return doc;
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (qh && qh.on.checked && (!qh.start.value || !qh.end.value)) {
      setText(err, 'Quiet hours need a start and an end time.');
      (qh.start.value ? qh.end : qh.start).focus();
      return;
    }
    run(save, err, async () => {
      const data = await request('PUT', path, patch(), { signal: ac.signal });
      draw(data || (await request('GET', path, undefined, { signal: ac.signal })));
    }, ok, 'Saved.');
  });

  run(null, err, async () => draw(await request('GET', path, undefined, { signal: ac.signal })));
  return () => ac.abort();
}

function soundCard() {
  const status = h('span', { class: 'pg-muted', id: 'prefs-sound-state' });
  const btn = h('button', { type: 'button', class: 'btn', id: 'prefs-sound-toggle' });
  const rep = check('Repeat a notification’s sound every 30 seconds until it is read', repeatWanted(), { id: 'prefs-repeat' });
  const paint = () => {
    setText(btn, soundWanted() ? 'Turn sound off' : 'Enable sound');
    setText(status, soundWanted() ? 'Sound is on in this browser.' : 'Sound is off in this browser.');
    rep.el.hidden = !soundWanted();
  };
  btn.addEventListener('click', () => {
    if (soundWanted()) disableSound();
    else enableSound();
    paint();
  });
  rep.box.addEventListener('change', () => setRepeat(rep.box.checked));
  paint();
  return card('Sound in this browser',
    h('p', { class: 'pg-lead', text: 'Browsers play sound only after you allow it here. With several tabs open, one of them plays. These two settings are kept in this browser.' }),
    h('div', { class: 'pg-row' }, btn, status), rep.el);
}

/** page is the route #/preferences: the user's grid, and for admins the org tab. */
export const prefsPage = {
  title: 'Preferences',
  render(container, ctx) {
    let cleanup = () => {};
    const panel = h('div', { id: 'prefs-panel', role: 'tabpanel' });
    const head = pageHead('Notification preferences', 'Choose what reaches you, how, and with which sound.');
    container.append(head);
    if (ctx.me?.role === 'admin') {
      const tabs = [['mine', 'My notifications'], ['org', 'Organisation defaults']].map(([k, t]) =>
        h('button', { type: 'button', role: 'tab', id: uid('tab'), class: 'pg-tab', 'aria-controls': 'prefs-panel', dataset: { tab: k }, text: t }));
      const show = (k) => {
        cleanup();
        panel.replaceChildren();
        for (const t of tabs) {
          const sel = t.dataset.tab === k;
          t.setAttribute('aria-selected', String(sel));
          t.tabIndex = sel ? 0 : -1;
          if (sel) panel.setAttribute('aria-labelledby', t.id);
        }
        if (k === 'mine') panel.append(soundCard());
        cleanup = renderPrefsGrid(panel, ctx, k === 'org');
      };
      const list = h('div', { role: 'tablist', class: 'pg-tabs', 'aria-label': 'Whose preferences' }, tabs);
      list.addEventListener('click', (e) => { const t = e.target.closest('[role=tab]'); if (t) show(t.dataset.tab); });
      list.addEventListener('keydown', (e) => {
        if (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft') return;
        const next = tabs[(tabs.indexOf(document.activeElement) + 1) % 2];
        next.focus();
        show(next.dataset.tab);
      });
      container.append(list, panel);
      show('mine');
    } else {
      container.append(panel);
      panel.append(soundCard());
      cleanup = renderPrefsGrid(panel, ctx, false);
    }
    return () => cleanup();
  },
};
