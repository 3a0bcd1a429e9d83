// The issue tracker (#/tracker): my assigned issues and the team's, with counts and the
// SLA state of each, kept current from the live feed.

import { h, clear, setText, timeElement } from './dom.js';
import { customerLabel, issueView } from './message.js';
import { statusName } from './issues-list.js';

const REPAINT_MS = 30000; // the "N min left" texts follow the clock between loads

/** mountTracker fills root and keeps it current; it returns the cleanup function. */
export function mountTracker(root, ctx) {
  let issues = []; // each with its SLA summary (GET /api/issues: "sla")
  let timer = 0;
  let gen = 0;
  let stopped = false;

  // One request for the whole page: the list carries each issue's SLA summary.
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
      slaCell(i.sla),
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
    counts();
  };
  // repaint brings the remaining times up to the clock, without asking the server.
  const repaint = () => {
    for (const i of issues) {
      for (const td of root.querySelectorAll(`tr[data-issue-id="${i.id}"] .tr-sla`)) {
        const s = summary(i.sla);
        td.dataset.sla = s.state;
        setText(td, s.text);
      }
    }
  };
  const slaCell = (sla) => {
    const s = summary(sla);
    return h('td', { class: 'tr-sla', dataset: { sla: s.state } }, s.text);
  };
  const counts = () => {
    const ul = root.querySelector('#tracker-counts');
    if (!ul) return;
    const n = (f) => issues.filter(f).length;
    const states = issues.map((i) => i.sla?.state);
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
  const ticker = setInterval(repaint, REPAINT_MS);
  return () => {
    stopped = true;
    clearTimeout(timer);
    clearInterval(ticker);
    for (const off of offs) off();
  };
}

const KIND = { first_response: 'first response', resolution: 'resolution' };

/**
 * summary is an issue's SLA summary from GET /api/issues (the clock that most needs
 * attention) as a state and a short text; the time left counts from now.
 */
function summary(sla) {
  const state = sla?.state || 'none';
  const name = KIND[sla?.kind] || sla?.kind || '';
  const left = sla?.due_at ? Math.round((Date.parse(sla.due_at) - Date.now()) / 60000) : 0;
  const span = Math.abs(left) >= 120 ? `${Math.round(left / 60)} h` : `${left} min`;
  const text = {
    breached: `Breached: ${name}`,
    // Past due but not yet flagged by the server (between two loads): say so, plainly.
    warning: left < 0 ? `Overdue: ${name}` : `${span} left: ${name}`,
    running: left < 0 ? `Overdue: ${name}` : `${span} left: ${name}`,
    paused: `Paused: ${name}`,
    met: 'Met',
    none: 'No SLA',
  }[state] || state;
  return { state, text };
}
