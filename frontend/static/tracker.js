// The issue tracker (#/tracker): my assigned issues and the team's, with counts and the
// SLA state of each, kept current from the live feed.

import { h, clear, setText, timeElement } from './dom.js';
import { customerLabel, issueView } from './message.js';
import { statusName } from './issues-list.js';

const SLA_FETCH = 4; // SLA look-ups in flight at once
const SLA_MAX = 100; // issues whose SLA is looked up

/** mountTracker fills root and keeps it current; it returns the cleanup function. */
export function mountTracker(root, ctx) {
  let issues = [];
  const sla = new Map(); // issue id → {state, text} (the worse of its clocks)
  let timer = 0;
  let gen = 0;
  let stopped = false;

  const load = async () => {
    const g = ++gen;
    let data;
    try {
      data = await ctx.api.issues({ status: 'open,in_progress', limit: 200 }, ctx.signal);
    } catch (err) {
      if (g === gen && err.name !== 'AbortError') {
        clear(root);
        root.appendChild(h('p', { class: 'page-missing', role: 'alert' }, `Could not load the tracker: ${err.message}`));
      }
      return;
    }
    if (g !== gen || stopped) return;
    issues = data.issues || [];
    render();
    // Mine first: those are the clocks that matter most to the reader.
    const order = [...issues].sort((a, b) => Number(b.assignee_id === ctx.me.id) - Number(a.assignee_id === ctx.me.id)).slice(0, SLA_MAX);
    const queue = order.map((i) => i.id);
    const worker = async () => {
      while (queue.length && g === gen && !stopped) {
        const id = queue.shift();
        try {
          const r = await ctx.api.issueSLA(id, ctx.signal);
          sla.set(id, summary(r.sla));
          paint(id);
        } catch {
          // an issue that left our channels meanwhile: no SLA shown
        }
      }
    };
    await Promise.all(Array.from({ length: SLA_FETCH }, worker));
    if (g === gen && !stopped) counts();
  };
  const later = () => {
    clearTimeout(timer);
    timer = setTimeout(load, 800);
  };

  const row = (i) => {
    const view = issueView(i, null);
    return h('tr', { dataset: { issueId: String(i.id), state: view.state } },
      h('td', null, h('a', { href: `#/issues/${i.id}` }, `#${i.id}`)),
      h('td', null, h('span', { class: 'state-dot', 'aria-hidden': 'true' }), customerLabel(i.customer)),
      h('td', { class: 'tr-subject' }, i.subject || ''),
      h('td', null, statusName(i.status)),
      h('td', null, i.priority),
      h('td', { class: 'tr-sla', dataset: { sla: 'loading' } }, '…'),
      h('td', null, timeElement(i.created_at)));
  };
  const table = (list, caption, id) => h('section', { class: 'tracker-section', 'aria-labelledby': id },
    h('h2', { id, class: 'sub-title' }, `${caption} (${list.length})`),
    list.length
      ? h('div', { class: 'table-wrap' }, h('table', { class: 'tracker-table' },
        h('thead', null, h('tr', null, ['Issue', 'Customer', 'Subject', 'Status', 'Priority', 'SLA', 'Opened'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', null, list.map(row))))
      : h('p', { class: 'muted' }, 'None.'));

  const render = () => {
    clear(root);
    const mine = issues.filter((i) => i.assignee_id === ctx.me.id);
    const unassigned = issues.filter((i) => i.assignee_id == null);
    const byAgent = new Map();
    for (const i of issues) {
      if (i.assignee_id == null || i.assignee_id === ctx.me.id) continue;
      const name = i.assignee_name || ctx.user(i.assignee_id)?.name || `user ${i.assignee_id}`;
      if (!byAgent.has(name)) byAgent.set(name, []);
      byAgent.get(name).push(i);
    }
    root.append(
      h('header', { class: 'page-head' }, h('h1', { class: 'page-title' }, 'Issue tracker')),
      h('ul', { class: 'counts', id: 'tracker-counts', 'aria-label': 'Counts' }),
      table(mine, 'Assigned to me', 'tr-mine'),
      h('h2', { class: 'group-heading' }, "The team's issues"),
      table(unassigned, 'Unassigned', 'tr-unassigned'),
      [...byAgent.entries()].sort().map(([name, list], n) => table(list, name, `tr-agent-${n}`)));
    for (const id of sla.keys()) paint(id);
    counts();
  };
  const paint = (id) => {
    const s = sla.get(id);
    for (const td of root.querySelectorAll(`tr[data-issue-id="${id}"] .tr-sla`)) {
      td.dataset.sla = s.state;
      setText(td, s.text);
    }
  };
  const counts = () => {
    const ul = root.querySelector('#tracker-counts');
    if (!ul) return;
    const n = (f) => issues.filter(f).length;
    const states = [...sla.entries()].filter(([id]) => issues.some((i) => i.id === id)).map(([, s]) => s.state);
    clear(ul);
    for (const [label, value, key] of [
      ['Assigned to me', n((i) => i.assignee_id === ctx.me.id), 'mine'],
      ['Unassigned', n((i) => i.assignee_id == null), 'unassigned'],
      ['Active', issues.length, 'active'],
      ['SLA at risk', states.filter((s) => s === 'warning').length, 'warning'],
      ['SLA breached', states.filter((s) => s === 'breached').length, 'breached'],
    ]) ul.appendChild(h('li', { class: 'count', dataset: { count: key } }, h('strong', null, String(value)), h('span', null, label)));
  };

  const offs = ['issue.updated', 'issue.unsnoozed', 'sla.warning', 'sla_breached', 'sla.breached', 'live.connected', 'resync']
    .map((t) => ctx.onEvent(t, later));
  offs.push(ctx.onEvent('message.created', (o) => { if (o.data?.message?.issue) later(); }));
  root.appendChild(h('p', { class: 'page-missing' }, 'Loading…'));
  load();
  return () => {
    stopped = true;
    clearTimeout(timer);
    for (const off of offs) off();
  };
}

/** summary is the worse of an issue's SLA clocks, as a state and a short text. */
function summary(s) {
  if (!s) return { state: 'none', text: 'No SLA' };
  const clocks = [['first response', s.first_response], ['resolution', s.resolution]].filter(([, c]) => c);
  const rank = { breached: 4, warning: 3, running: 2, paused: 1, met: 0 };
  let worst = null;
  for (const [name, c] of clocks) {
    let state = c.state;
    if (state === 'running' && (c.warned_at || c.remaining_seconds < 0)) state = c.remaining_seconds < 0 ? 'breached' : 'warning';
    if (!worst || rank[state] > rank[worst.state]) worst = { state, name, c };
  }
  if (!worst) return { state: 'none', text: 'No SLA' };
  const mins = Math.round(Math.abs(worst.c.remaining_seconds) / 60);
  const span = mins >= 120 ? `${Math.round(mins / 60)} h` : `${mins} min`;
  const text = {
    breached: `Breached: ${worst.name}`,
    warning: `${span} left: ${worst.name}`,
    running: `${span} left: ${worst.name}`,
    paused: 'Paused',
    met: 'Met',
  }[worst.state];
  return { state: worst.state, text };
}
