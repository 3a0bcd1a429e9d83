// The issue list, left panel of the issue view: filters (mine, unassigned, status,
// channel, priority, search) over GET /api/issues, paging, and live updates from the
// channel feeds (issue.updated, and message.created for new issues).

import { h, clear, setText, timeElement } from './dom.js';
import { customerLabel, issueView } from './message.js';

const $ = (id) => document.getElementById(id);
const PAGE = 50;

/** statusName is a status for people. */
export function statusName(s) {
  return { open: 'Open', in_progress: 'In progress', resolved: 'Resolved', closed: 'Closed' }[s] || s;
}

/** slaFlag marks an issue whose SLA needs attention (GET /api/issues: "sla"); null otherwise. */
function slaFlag(sla) {
  if (sla?.state !== 'breached' && sla?.state !== 'warning') return null;
  const what = sla.kind === 'resolution' ? 'resolution' : 'first response';
  return h('span', { class: 'ii-sla', dataset: { sla: sla.state }, title: `SLA ${sla.state === 'breached' ? 'breached' : 'at risk'}: ${what}` },
    sla.state === 'breached' ? 'SLA breached' : 'SLA at risk');
}

export class IssueList {
  constructor(ctx) {
    this.ctx = ctx;
    this.list = $('issue-list');
    this.issues = []; // newest first
    this.latest = new Map(); // id → the newest state heard live (a page read earlier may be older)
    this.selected = null;
    this.next = null; // next_before, when there are more
    this.gen = 0;
    this.loaded = false;
    const signal = ctx.signal;
    const form = $('issue-filters');
    form.addEventListener('submit', (e) => e.preventDefault(), { signal });
    form.addEventListener('change', () => this.load(), { signal });
    let t = 0;
    $('f-q').addEventListener('input', () => {
      clearTimeout(t);
      t = setTimeout(() => this.load(), 250);
    }, { signal });
    $('issue-more').addEventListener('click', () => this.load(true), { signal });
    // Scrolling near the end loads the next page, as the button does.
    this.list.addEventListener('scroll', () => {
      const l = this.list;
      if (this.next != null && !this.loadingMore && l.scrollHeight - l.scrollTop - l.clientHeight < 200) {
        this.loadingMore = true;
        this.load(true).finally(() => { this.loadingMore = false; });
      }
    }, { passive: true, signal });
    const live = (issue) => issue && this.apply(issue);
    ctx.onEvent('resync', () => { if (this.loaded) this.load(); });
    ctx.onEvent('issue.updated', (o) => live(o.data?.issue));
    ctx.onEvent('issue.unsnoozed', (o) => live(o.data?.issue));
    ctx.onEvent('message.created', (o) => {
      const m = o.data?.message;
      if (m?.issue) live({ customer: m.customer, ...m.issue });
    });
  }

  /** setChannels offers the customer channels in the channel filter. */
  setChannels(channels) {
    const sel = $('f-channel');
    const value = sel.value;
    clear(sel);
    sel.appendChild(h('option', { value: '' }, 'All channels'));
    for (const c of channels) if (c.kind === 'sms' || c.kind === 'email') sel.appendChild(h('option', { value: String(c.id) }, c.name));
    sel.value = value;
    if (sel.value !== value) sel.value = '';
  }

  filters() {
    return {
      assignee: $('f-assignee').value,
      status: $('f-status').value,
      channel: $('f-channel').value,
      priority: $('f-priority').value,
      q: $('f-q').value.trim(),
    };
  }

  /** matches: the issue belongs in the list as filtered (q aside: only the server knows). */
  matches(issue) {
    const f = this.filters();
    if (f.status && !f.status.split(',').includes(issue.status)) return false;
    if (f.assignee === 'me' && issue.assignee_id !== this.ctx.me.id) return false;
    if (f.assignee === 'none' && issue.assignee_id != null) return false;
    if (f.channel && Number(f.channel) !== issue.channel_id) return false;
    if (f.priority && f.priority !== issue.priority) return false;
    if (issue.snoozed_until && Date.parse(issue.snoozed_until) > Date.now()) return false;
    return true;
  }

  async load(more = false) {
    const gen = ++this.gen;
    const query = { ...this.filters(), limit: PAGE };
    if (more && this.next) query.before = this.next;
    setText($('issue-count'), 'Loading issues…');
    let data;
    try {
      data = await this.ctx.api.issues(query, this.ctx.signal);
    } catch (err) {
      if (gen !== this.gen || err.name === 'AbortError') return;
      setText($('issue-count'), `Could not load issues: ${err.message}`);
      return;
    }
    if (gen !== this.gen) return;
    this.loaded = true;
    const got = (data.issues || []).map((i) => {
      const l = this.latest.get(i.id);
      return l && Date.parse(l.updated_at) > Date.parse(i.updated_at) ? { ...i, ...l, customer: i.customer } : i;
    }).filter((i) => this.matches(i) || i.id === this.selected);
    this.issues = more ? this.issues.concat(got.filter((i) => !this.issues.some((x) => x.id === i.id))) : got;
    this.next = data.has_more ? data.next_before : null;
    this.render();
  }

  render() {
    const focused = this.list.contains(document.activeElement) ? document.activeElement.dataset.issueId : null;
    clear(this.list);
    for (const issue of this.issues) this.list.appendChild(h('li', null, this.item(issue)));
    if (focused) this.list.querySelector(`[data-issue-id="${focused}"]`)?.focus();
    $('issue-more').hidden = this.next == null;
    const n = this.issues.length;
    setText($('issue-count'), n === 0 ? 'No issues match.' : `${n}${this.next != null ? '+' : ''} issue${n === 1 ? '' : 's'}`);
  }

  item(issue) {
    const view = issueView(issue, null);
    const assignee = issue.assignee_id != null ? (issue.assignee_name || this.ctx.user(issue.assignee_id)?.name || 'someone') : 'Unassigned';
    return h('a', {
      class: 'issue-item', href: `#/issues/${issue.id}`,
      dataset: { issueId: String(issue.id), state: view.state, status: issue.status },
      'aria-current': issue.id === this.selected ? 'true' : null,
    },
    h('span', { class: 'ii-top' },
      h('span', { class: 'state-dot', 'aria-hidden': 'true' }),
      h('span', { class: 'ii-customer' }, customerLabel(issue.customer)),
      timeElement(issue.updated_at || issue.created_at)),
    h('span', { class: 'ii-subject' }, issue.subject || '(no subject)'),
    h('span', { class: 'ii-meta' }, `#${issue.id} · ${statusName(issue.status)} · ${assignee}`,
      /^(high|urgent)$/.test(issue.priority) ? h('span', { class: `prio prio-${issue.priority}` }, issue.priority) : null,
      slaFlag(issue.sla)));
  }

  /** apply takes a live issue: updated in place, added when new and matching, or dropped. */
  apply(issue) {
    if (issue?.id == null) return;
    const known = this.latest.get(issue.id);
    if (known && Date.parse(issue.updated_at) < Date.parse(known.updated_at)) return; // older than shown
    if (this.latest.size > 5000) this.latest.clear(); // a day's worth; older pages are reloaded anyway
    this.latest.set(issue.id, issue);
    if (!this.loaded) return;
    const i = this.issues.findIndex((x) => x.id === issue.id);
    if (i >= 0) {
      const merged = { ...this.issues[i], ...issue };
      if (!merged.customer) merged.customer = this.issues[i].customer;
      if (!merged.sla) merged.sla = this.issues[i].sla; // live issues carry none; keep what the list read
      if (this.matches(merged) || merged.id === this.selected) this.issues[i] = merged;
      else this.issues.splice(i, 1);
    } else if (this.matches(issue) && !this.filters().q) {
      // Newest first by id; beyond the loaded page it will come with "Load more".
      const last = this.issues[this.issues.length - 1];
      if (this.next != null && last && issue.id < last.id) return;
      let at = this.issues.findIndex((x) => x.id < issue.id);
      if (at < 0) at = this.issues.length;
      this.issues.splice(at, 0, issue);
    } else {
      return;
    }
    this.render();
  }

  select(id) {
    this.selected = id;
    for (const a of this.list.querySelectorAll('[data-issue-id]')) {
      if (Number(a.dataset.issueId) === id) a.setAttribute('aria-current', 'true');
      else a.removeAttribute('aria-current');
    }
  }

  /** neighbor is the id delta places from the selected issue (the first when none is). */
  neighbor(delta) {
    if (!this.issues.length) return null;
    const i = this.issues.findIndex((x) => x.id === this.selected);
    if (i < 0) return this.issues[0].id;
    const j = Math.min(this.issues.length - 1, Math.max(0, i + delta));
    return this.issues[j].id;
  }
}
