// The admin pages (#/admin, #/admin/<section>): users, teams, channels (Twilio numbers
// with the webhook URLs to paste into Twilio, mailboxes), SLAs with the alert channel and
// auto-close, and the organisation's notification defaults. The server enforces the
// rules; these pages only offer what an admin may do and show every refusal as it is.

import { request } from './api.js';
import { h, setText } from './dom.js';
import { card, check, copyButton, errorLine, field, pageHead, run, select, statusLine, table } from './admin-ui.js';
import { renderPrefsGrid } from './prefs.js';

const SECTIONS = [
  ['users', 'Users'],
  ['teams', 'Teams'],
  ['channels', 'Channels'],
  ['sla', 'SLAs'],
  ['notifications', 'Notification defaults'],
];

const get = (path, signal) => request('GET', path, undefined, { signal });
const enc = encodeURIComponent;

// form builds a card with a form: fields, a submit button, and its error line.
function formCard(title, id, fields, submitText, onSubmit) {
  const err = errorLine();
  const btn = h('button', { type: 'submit', class: 'btn btn-primary', text: submitText });
  const f = h('form', { id, class: 'pg-form', novalidate: true }, h('div', { class: 'pg-row' }, fields), h('div', { class: 'pg-actions' }, btn, err));
  f.addEventListener('submit', (e) => {
    e.preventDefault();
    run(btn, err, () => onSubmit(f));
  });
  return card(title, f);
}

const input = (name, props = {}) => h('input', { name, id: `admin-${name}`, autocomplete: 'off', ...props });

// ---- Users ----

async function users(box, ctx, signal) {
  const err = errorLine();
  const list = h('div');
  const reload = async () => {
    const data = await get('/api/users', signal);
    list.replaceChildren(table(['Name', 'Email', 'Handle', 'Role', 'Status'], data.users.map((u) => {
      const role = select([['agent', 'Agent'], ['admin', 'Admin']], u.role, { 'aria-label': `Role of ${u.name}` });
      role.addEventListener('change', () => run(role, err, () => request('PATCH', `/api/users/${u.id}`, { role: role.value }))
        .then((r) => { if (!r) role.value = u.role; else u.role = role.value; }));
      const dis = h('button', { type: 'button', class: 'btn btn-small', text: u.disabled ? 'Enable' : 'Disable' });
      dis.addEventListener('click', () => run(dis, err, async () => {
        await request('PATCH', `/api/users/${u.id}`, { disabled: !u.disabled });
        await reload();
      }));
      return [h('span', { class: 'pg-strong', text: u.name }), u.email, `@${u.handle}`, role,
        h('span', { class: 'pg-inline' }, h('span', { class: u.disabled ? 'pill pill-off' : 'pill pill-on', text: u.disabled ? 'Disabled' : 'Active' }), dis)];
    }), { id: 'admin-users' }));
  };
  box.append(
    formCard('Add a user', 'admin-user-form', [
      field('Name', input('name', { required: true, maxlength: 100 })),
      field('Email', input('email', { type: 'email', required: true })),
      field('Handle', input('handle', { placeholder: 'from the email' }), 'Optional'),
      field('Role', select([['agent', 'Agent'], ['admin', 'Admin']], 'agent', { name: 'role', id: 'admin-role' })),
      field('Password', input('password', { type: 'password', autocomplete: 'new-password', minlength: 8, required: true }), 'At least 8 characters'),
    ], 'Add user', async (f) => {
      const v = Object.fromEntries(new FormData(f));
      if (!v.handle) delete v.handle;
      await request('POST', '/api/users', v);
      f.reset();
      await reload();
    }),
    card('Users', err, list));
  await reload();
}

// ---- Teams ----

async function teams(box, ctx, signal) {
  const err = errorLine();
  const list = h('div', { id: 'admin-teams', class: 'pg-stack' });
  const reload = async () => {
    const [{ teams: all }, { users: people }] = await Promise.all([get('/api/teams', signal), get('/api/users', signal)]);
    const byId = new Map(people.map((u) => [u.id, u]));
    list.replaceChildren(...(all.length ? all.map((t) => {
      const members = t.member_ids.map((id) => {
        const u = byId.get(id);
        const rm = h('button', { type: 'button', class: 'chip-x', 'aria-label': `Remove ${u?.name || id} from ${t.name}`, text: '×' });
        rm.addEventListener('click', () => run(rm, err, async () => {
          await request('DELETE', `/api/teams/${t.id}/members/${id}`);
          await reload();
        }));
        return h('li', { class: 'chip', dataset: { userId: id } }, u?.name || `#${id}`, rm);
      });
      const pick = select([['', 'Add a member…'], ...people.filter((u) => !u.disabled && !t.member_ids.includes(u.id)).map((u) => [u.id, u.name])], '',
        { 'aria-label': `Add a member to ${t.name}` });
      const add = h('button', { type: 'button', class: 'btn btn-small', text: 'Add' });
      add.addEventListener('click', () => {
        if (!pick.value) { setText(err, 'Pick someone to add.'); return; }
        run(add, err, async () => {
          await request('PUT', `/api/teams/${t.id}/members/${pick.value}`);
          await reload();
        });
      });
      return h('div', { class: 'team', dataset: { teamId: t.id } },
        h('h3', null, t.name, h('span', { class: 'pg-muted', text: ` @${t.handle}` })),
        h('ul', { class: 'chips' }, members.length ? members : h('li', { class: 'pg-muted', text: 'No members yet.' })),
        h('div', { class: 'pg-inline' }, pick, add));
    }) : [h('p', { class: 'pg-muted', text: 'No teams yet.' })]));
  };
  box.append(
    formCard('Create a team', 'admin-team-form', [
      field('Name', input('team-name', { name: 'name', required: true, maxlength: 100 })),
      field('Handle', input('team-handle', { name: 'handle' }), 'Optional; from the name'),
    ], 'Create team', async (f) => {
      const v = Object.fromEntries(new FormData(f));
      if (!v.handle) delete v.handle;
      await request('POST', '/api/teams', v);
      f.reset();
      await reload();
    }),
    card('Teams', err, list));
  await reload();
}

// ---- Channels: Twilio numbers and mailboxes ----

function urlRow(label, url) {
  const code = h('code', { class: 'webhook-url', text: url });
  return h('div', { class: 'webhook' }, h('span', { class: 'webhook-label', text: label }), code, copyButton(url, code));
}

async function channels(box, ctx, signal) {
  const nErr = errorLine();
  const mErr = errorLine();
  const hooks = h('div', { id: 'admin-webhooks' });
  const numbers = h('div', { id: 'admin-numbers' });
  const boxes = h('div', { id: 'admin-mailboxes' });
  const del = (label, path, e, after) => {
    const b = h('button', { type: 'button', class: 'btn btn-small btn-danger', text: 'Remove', 'aria-label': `Remove ${label}` });
    b.addEventListener('click', () => {
      if (!window.confirm(`Remove ${label}? Its channel and issues stay.`)) return;
      run(b, e, async () => { await request('DELETE', path); await after(); });
    });
    return b;
  };
  const loadNumbers = async () => {
    const data = await get('/api/sms/numbers', signal);
    const w = data.webhooks || {};
    hooks.replaceChildren(
      h('p', { class: 'pg-lead', text: 'In Twilio, set “A message comes in” of each number (or its Messaging Service) to the inbound URL, method POST. Status callbacks are named by Switchboard on every message it sends.' }),
      w.inbound ? urlRow('Inbound (A message comes in)', w.inbound) : null,
      w.status ? urlRow('Status callback', w.status) : null);
    numbers.replaceChildren(data.numbers.length ? table(['Number', 'Name', 'Account', 'Webhooks', ''], data.numbers.map((n) => [
      h('span', { class: 'pg-strong', text: n.number }), n.name || '', h('span', null, n.account_sid, n.messaging_service_sid ? h('small', { class: 'pg-muted', text: ` · ${n.messaging_service_sid}` }) : null),
      // Every number shares the URLs above today; a number with its own would show them here.
      n.webhooks && (n.webhooks.inbound !== w.inbound || n.webhooks.status !== w.status)
        ? h('div', null, urlRow('Inbound', n.webhooks.inbound), urlRow('Status', n.webhooks.status))
        : h('span', { class: 'pg-muted', text: 'As above' }),
      del(n.number, `/api/sms/numbers/${n.id}`, nErr, loadNumbers),
    ])) : h('p', { class: 'pg-muted', text: 'No numbers connected.' }));
  };
  const loadBoxes = async () => {
    const data = await get('/api/email/mailboxes', signal);
    boxes.replaceChildren(data.mailboxes.length ? table(['Address', 'Name', 'IMAP', ''], data.mailboxes.map((m) => [
      h('span', { class: 'pg-strong', text: m.address }), m.name || '', h('code', { text: m.url }),
      del(m.address, `/api/email/mailboxes/${m.id}`, mErr, loadBoxes),
    ])) : h('p', { class: 'pg-muted', text: 'No mailboxes.' }));
  };
  box.append(
    card('Twilio webhooks', hooks),
    formCard('Connect a Twilio number', 'admin-number-form', [
      field('Number', input('number', { required: true, placeholder: '+15550100000', inputmode: 'tel' }), 'E.164'),
      field('Account SID', input('account_sid', { required: true, placeholder: 'AC…', spellcheck: 'false' })),
      field('Auth token', input('auth_token', { type: 'password', required: true, autocomplete: 'off' })),
      field('Name', input('number-name', { name: 'name' }), 'Optional'),
      field('Messaging Service SID', input('messaging_service_sid', { placeholder: 'MG…' }), 'Optional'),
    ], 'Connect number', async (f) => {
      const v = Object.fromEntries(new FormData(f));
      for (const k of ['name', 'messaging_service_sid']) if (!v[k]) delete v[k];
      await request('POST', '/api/sms/numbers', v);
      f.reset();
      await loadNumbers();
    }),
    card('SMS numbers', nErr, numbers),
    formCard('Add a mailbox', 'admin-mailbox-form', [
      field('IMAP URL', input('url', { required: true, placeholder: 'imaps://user:password@imap.example.com/INBOX', class: 'pg-wide' })),
      field('Address', input('address', { type: 'email' }), 'Only when the user name is not the address'),
      field('Name', input('mailbox-name', { name: 'name' }), 'Optional'),
    ], 'Add mailbox', async (f) => {
      const v = Object.fromEntries(new FormData(f));
      for (const k of ['name', 'address']) if (!v[k]) delete v[k];
      await request('POST', '/api/email/mailboxes', v);
      f.reset();
      await loadBoxes();
    }),
    card('Mailboxes', mErr, boxes));
  await Promise.all([loadNumbers().catch((e) => setText(nErr, e.message)), loadBoxes().catch((e) => setText(mErr, e.message))]);
}

// ---- SLAs, the alert channel and auto-close ----

async function slas(box, ctx, signal) {
  const all = ctx.channels() || [];
  const customer = all.filter((c) => c.kind === 'sms' || c.kind === 'email');
  const settings = await get('/api/settings/sla', signal);
  const sErr = errorLine();
  const sOk = statusLine();
  const alertTo = all.filter((c) => c.kind === 'team' || c.id === settings.alert_channel_id);
  const alert = select([['', 'Nowhere'], ...alertTo.map((c) => [c.id, c.name])], settings.alert_channel_id ?? '', { id: 'admin-alert-channel' });
  const close = h('input', { type: 'number', id: 'admin-auto-close', min: 0, step: 'any', value: String((settings.auto_close_minutes || 0) / 60) });
  const saveS = h('button', { type: 'button', class: 'btn btn-primary', text: 'Save' });
  saveS.addEventListener('click', () => run(saveS, sErr, () => request('PUT', '/api/settings/sla', {
    alert_channel_id: alert.value ? Number(alert.value) : null,
    auto_close_minutes: Math.round(Number(close.value) * 60),
  }), sOk, 'Saved.'));
  box.append(card('Breach alerts and auto-close',
    h('div', { class: 'pg-row' }, field('Post breach alerts in', alert), field('Close resolved issues after (hours)', close, '0: never')),
    h('div', { class: 'pg-actions' }, saveS, sOk, sErr)));

  const rows = await Promise.all(customer.map(async (ch) => {
    let p = null;
    try { p = await get(`/api/channels/${ch.id}/sla`, signal); } catch (e) { if (e.status !== 404) throw e; }
    const err = errorLine();
    const ok = statusLine();
    const num = (v, label) => h('input', { type: 'number', min: 1, value: v ?? '', 'aria-label': `${ch.name}: ${label}`, class: 'pg-num' });
    const fr = num(p?.first_response_minutes, 'first response (minutes)');
    const rs = num(p?.resolution_minutes, 'resolution (minutes)');
    const wp = num(p?.warn_percent ?? 80, 'warn at percent');
    const pause = check('Pause while waiting on the customer', p?.pause_while_waiting);
    const save = h('button', { type: 'button', class: 'btn btn-small btn-primary', text: 'Save' });
    const rm = h('button', { type: 'button', class: 'btn btn-small', text: 'Remove', hidden: !p });
    save.addEventListener('click', () => run(save, err, async () => {
      await request('PUT', `/api/channels/${ch.id}/sla`, {
        first_response_minutes: Number(fr.value), resolution_minutes: Number(rs.value),
        pause_while_waiting: pause.box.checked, warn_percent: Number(wp.value),
      });
      rm.hidden = false;
    }, ok, 'Saved.'));
    rm.addEventListener('click', () => run(rm, err, async () => {
      await request('DELETE', `/api/channels/${ch.id}/sla`);
      fr.value = rs.value = '';
      rm.hidden = true;
    }, ok, 'Removed.'));
    return [h('span', { class: 'pg-strong', text: ch.name }), fr, rs, wp, pause.el, h('span', { class: 'pg-inline' }, save, rm, ok, err)];
  }));
  box.append(card('SLA per channel',
    h('p', { class: 'pg-lead', text: 'Targets in minutes: first response 30–2880, resolution from 30 minutes to 90 days. New issues are held to the policy in force when they open.' }),
    rows.length ? table(['Channel', 'First response', 'Resolution', 'Warn at %', 'Pause', ''], rows, { id: 'admin-slas' })
      : h('p', { class: 'pg-muted', text: 'No customer channels yet.' })));
}

// ---- The page ----

export const adminPage = {
  title: 'Admin',
  render(container, ctx, params = {}) {
    if (ctx.me?.role !== 'admin') {
      container.append(pageHead('Admin'), h('p', { id: 'admin-denied', class: 'pg-denied', role: 'alert', text: 'These pages are for admins only. Ask an admin if you need something changed.' }));
      return undefined;
    }
    const ac = new AbortController();
    const section = SECTIONS.some(([k]) => k === params.section) ? params.section : 'users';
    const nav = h('nav', { class: 'pg-tabs', 'aria-label': 'Admin sections' }, SECTIONS.map(([k, t]) =>
      h('a', { href: `#/admin/${k}`, class: 'pg-tab', 'aria-current': k === section ? 'page' : null, text: t })));
    const box = h('div', { id: 'admin-section', class: 'pg-stack', dataset: { section } });
    const err = errorLine();
    container.append(pageHead('Admin'), nav, err, box);
    let cleanup = null;
    const fns = { users, teams, channels, sla: slas };
    if (section === 'notifications') {
      cleanup = renderPrefsGrid(box, ctx, true);
    } else {
      fns[section](box, ctx, ac.signal).catch((e) => { if (e.name !== 'AbortError') setText(err, e.message); });
    }
    return () => { ac.abort(); cleanup?.(); };
  },
};
