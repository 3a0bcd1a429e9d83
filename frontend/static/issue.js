// The open issue: the conversation (customer messages, replies with their delivery
// status, internal notes, activity), the preview (status, priority, assignee, SLA) and
// customer card, and the composer (Reply or Internal note, @-completion). It follows the
// issue's topic while open and stays current from it: issue.updated, comment.created,
// comment.delivery and issue.viewing.

import { h, clear, setText, timeElement } from './dom.js';
import { allowed, customerLabel, issueView } from './message.js';
import { statusName } from './issues-list.js';
import { attachMentions } from './composer.js';
import { showCustomer } from './customer.js';

const $ = (id) => document.getElementById(id);
const VIEWING_EVERY = 5000; // tell the others we are here this often
const VIEWER_GONE = 10000; // forget a viewer not heard from for this long
const PRIORITIES = ['low', 'normal', 'high', 'urgent'];
const DELIVERY = {
  queued: 'Queued', sending: 'Sending', sent: 'Sent', delivered: 'Delivered', undelivered: 'Not delivered',
  failed: 'Failed', unknown: 'Unknown', discarded: 'Discarded', read: 'Read', accepted: 'Accepted',
};
const STUCK = ['failed', 'undelivered', 'unknown']; // delivery states an agent may act on
const cap = (s) => s.charAt(0).toUpperCase() + s.slice(1);
const HOUR = 3600e3;
// Snooze choices: a label and when it ends.
const SNOOZES = [
  ['1 hour', () => new Date(Date.now() + HOUR)],
  ['4 hours', () => new Date(Date.now() + 4 * HOUR)],
  ['Tomorrow 9:00', () => { const d = new Date(Date.now() + 24 * HOUR); d.setHours(9, 0, 0, 0); return d; }],
  ['Next week', () => { const d = new Date(Date.now() + 7 * 24 * HOUR); d.setHours(9, 0, 0, 0); return d; }],
];

export class IssueView {
  /**
   * deps: {live, pickUser(title) → Promise<user|null>, onIssue(issue)}; onIssue hears every
   * new state of the open issue (the list and the feed show it too).
   */
  constructor(ctx, deps) {
    this.ctx = ctx;
    this.deps = deps;
    this.id = null;
    this.issue = null;
    this.comments = new Map(); // id → comment
    // Delivery states heard live, by comment id, numbered in the order heard: a reload that
    // was asked for before one of them must not bring back the older state it read.
    this.delivery = new Map(); // comment id → {state: {delivery_status, error_reason}, seq}
    this.seq = 0;
    this.activity = new Map(); // id → entry
    this.viewers = new Map(); // user id → {name, typing, at}
    this.teams = [];
    this.gen = 0;
    this.busy = false;
    this.typing = false;
    this.refetchTimer = 0;
    this.typingTimer = 0;
    const signal = ctx.signal;

    ctx.onEvent('subscribed', (o) => { if (o.topic === this.topic()) this.load(); });
    ctx.onEvent('resync', () => this.load());
    ctx.onEvent('error', (o) => { if (o.topic && o.topic === this.topic()) this.load(); });
    const mine = (o) => this.id != null && (o.topic === this.topic() || Number(o.data?.issue?.id ?? o.data?.issue_id) === this.id);
    ctx.onEvent('issue.updated', (o) => { if (mine(o) && o.data?.issue?.id === this.id) this.onUpdated(o.data.issue); });
    ctx.onEvent('issue.unsnoozed', (o) => { if (mine(o) && o.data?.issue?.id === this.id) this.onUpdated(o.data.issue); });
    ctx.onEvent('comment.created', (o) => {
      if (!mine(o) || !o.data?.comment) return;
      this.addComment(o.data.comment);
      this.scrollDown();
    });
    ctx.onEvent('comment.delivery', (o) => {
      const d = o.data || {};
      if (!mine(o) || !d.delivery_status) return;
      this.setDelivery(d.comment_id, d.delivery_status, d.error_reason || d.delivery?.error_reason || '');
    });
    ctx.onEvent('issue.viewing', (o) => {
      const d = o.data || {};
      if (!mine(o) || d.user_id == null || d.user_id === ctx.me.id) return;
      // Someone new: let them know we are here too, as soon as the server's limit of one
      // announcement per 2 s allows.
      if (!this.viewers.has(d.user_id)) {
        clearTimeout(this.viewingTimer);
        this.viewingTimer = setTimeout(() => this.sayViewing(), Math.max(0, (this.lastViewing || 0) + 2100 - Date.now()));
      }
      this.viewers.set(d.user_id, { name: d.name || ctx.user(d.user_id)?.name || 'Someone', typing: !!d.typing, at: Date.now() });
      this.paintViewers();
    });
    for (const t of ['sla.warning', 'sla_breached', 'sla.breached']) ctx.onEvent(t, (o) => { if (mine(o)) this.loadSLA(); });

    const form = $('issue-composer');
    const input = $('issue-input');
    this.listOpen = attachMentions(input, $('mention-list'), () => this.handles(), signal);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.send();
    }, { signal });
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        this.send();
      }
    }, { signal });
    input.addEventListener('input', () => {
      setText($('issue-error'), '');
      this.setTyping(input.value.trim() !== '');
    }, { signal });
    form.addEventListener('change', (e) => { if (e.target.name === 'mode') this.paintComposer(); }, { signal });
    $('conversation').addEventListener('click', (e) => {
      const b = e.target.closest('button[data-delivery-action]');
      const c = b && this.comments.get(Number(b.closest('[data-comment-id]').dataset.commentId));
      if (c) {
        b.disabled = true;
        this.fixDelivery(c, b.dataset.deliveryAction);
      }
    }, { signal });
    $('issue-side').addEventListener('click', (e) => {
      const b = e.target.closest('button[data-action]');
      if (b && !b.disabled) this.act(b.dataset.action);
    }, { signal });
    $('issue-side').addEventListener('change', (e) => {
      if (e.target.id === 'issue-priority') this.act('priority', e.target.value);
      if (e.target.id === 'issue-snooze' && e.target.value) this.act('snooze', e.target.value);
    }, { signal });
    this.ticker = setInterval(() => this.tick(), 2000);
    signal.addEventListener('abort', () => clearInterval(this.ticker));
  }

  topic() {
    return this.id == null ? '' : `issue:${this.id}`;
  }

  async loadTeams() {
    try {
      this.teams = (await this.ctx.api.teams()).teams || [];
    } catch {
      this.teams = [];
    }
  }

  handles() {
    return [
      ...this.ctx.users().filter((u) => !u.disabled).map((u) => ({ handle: u.handle, name: u.name, kind: 'user' })),
      ...this.teams.map((t) => ({ handle: t.handle, name: t.name, kind: 'team' })),
    ];
  }

  /** open shows issue id; the data follows the subscription (or comes now when offline). */
  open(id) {
    if (this.id === id) return;
    this.leave();
    this.id = id;
    this.deps.live.subscribe(this.topic());
    // Load once subscribed, so that nothing falls between; not later than a moment from
    // now, connected or not.
    if (!this.ctx.isConnected()) this.load();
    else setTimeout(() => { if (this.id === id && !this.issue) this.load(); }, 1500);
    setText($('issue-title'), `Issue #${id}`);
    setText($('conv-status'), 'Loading…');
    $('issue-view').dataset.open = 'true';
    if (!this.teams.length) this.loadTeams();
    this.saidTyping = false;
    this.sayViewing();
  }

  leave() {
    if (this.id == null) return;
    this.setTyping(false);
    clearTimeout(this.viewingTimer);
    this.deps.live.unsubscribe(this.topic());
    this.id = null;
    this.issue = null;
    this.sla = undefined;
    this.gen++;
    this.comments.clear();
    this.delivery.clear();
    this.activity.clear();
    this.viewers.clear();
    clearTimeout(this.refetchTimer);
    clear($('conversation'));
    clear($('issue-preview'));
    clear($('customer-card'));
    setText($('issue-viewers'), '');
    setText($('issue-error'), '');
    setText($('conv-error'), '');
    $('issue-input').value = '';
    delete $('issue-view').dataset.open;
  }

  async load() {
    const id = this.id;
    if (id == null) return;
    const gen = ++this.gen;
    const mark = this.seq;
    let data;
    try {
      data = await this.ctx.api.issue(id, this.ctx.signal);
    } catch (err) {
      if (gen !== this.gen || err.name === 'AbortError') return;
      setText($('conv-status'), '');
      setText($('conv-error'), err.status === 404 ? 'No such issue, or not in your channels.' : `Could not load the issue: ${err.message}`);
      return;
    }
    if (gen !== this.gen) return;
    setText($('conv-status'), '');
    setText($('conv-error'), '');
    const first = this.issue == null;
    for (const c of data.comments || []) {
      const live = this.delivery.get(c.id);
      this.comments.set(c.id, { ...this.comments.get(c.id), ...c, ...(live && live.seq > mark ? live.state : null) });
    }
    for (const a of data.activity || []) this.activity.set(a.id, a);
    this.setIssue(data.issue);
    this.renderConversation();
    if (first) {
      this.scrollDown(true);
      const input = $('issue-input');
      if (this.deps.wantFocus?.()) input.focus();
    }
    this.loadSLA();
  }

  async loadSLA() {
    const id = this.id;
    if (id == null) return;
    try {
      const data = await this.ctx.api.issueSLA(id, this.ctx.signal);
      if (id === this.id) {
        this.sla = data.sla;
        this.paintSLA();
      }
    } catch (err) {
      if (err.name !== 'AbortError') console.warn('switchboard: could not load the SLA', err);
    }
  }

  onUpdated(issue) {
    this.setIssue({ ...this.issue, ...issue, customer: issue.customer || this.issue?.customer });
    // The activity entry is not in the event: read the issue again, once per burst.
    clearTimeout(this.refetchTimer);
    this.refetchTimer = setTimeout(() => this.load(), 100);
  }

  setIssue(issue) {
    if (!issue || issue.id !== this.id) return;
    // An answer read before a change that is already shown is not shown over it.
    if (this.issue && Date.parse(issue.updated_at) < Date.parse(this.issue.updated_at)) return;
    this.issue = issue;
    setText($('issue-title'), `#${issue.id} ${issue.subject || customerLabel(issue.customer)}`);
    this.renderPreview();
    this.renderCustomer();
    this.paintComposer();
    this.deps.onIssue?.(issue);
  }

  /** lastSeen is the newest comment this view shows, for the collision guard. */
  lastSeen() {
    let max = 0;
    for (const id of this.comments.keys()) if (id > max) max = id;
    return max || undefined;
  }

  // ---- Conversation ----

  renderConversation() {
    const items = [
      ...[...this.comments.values()].map((c) => ({ t: Date.parse(c.created_at), k: 0, id: c.id, c })),
      ...[...this.activity.values()].filter((a) => activityText(a, this.ctx)).map((a) => ({ t: Date.parse(a.created_at), k: 1, id: a.id, a })),
    ].sort((x, y) => x.t - y.t || x.k - y.k || x.id - y.id);
    const root = $('conversation');
    const stick = root.scrollHeight - root.scrollTop - root.clientHeight < 40;
    // Keep the elements already shown (the log announces only what is new to screen
    // readers) and put each one in its place.
    const old = new Map([...root.children].map((el) => [el.dataset.key, el]));
    let at = root.firstChild;
    for (const it of items) {
      const key = (it.c ? 'c' : 'a') + it.id;
      let el = old.get(key);
      old.delete(key);
      if (!el) {
        el = it.c ? this.renderComment(it.c) : this.renderActivity(it.a);
        el.dataset.key = key;
      } else if (it.c) {
        this.paintDelivery(it.c, el);
      }
      if (el !== at) root.insertBefore(el, at);
      else at = at.nextSibling;
    }
    for (const el of old.values()) el.remove();
    if (!items.length) root.appendChild(h('p', { class: 'feed-empty', dataset: { key: 'empty' } }, 'Nothing here yet.'));
    if (stick) this.scrollDown(true);
  }

  addComment(c) {
    if (c.issue_id != null && c.issue_id !== this.id) return;
    // A comment as it was created (a reply "queued") may come after the reports on it.
    this.comments.set(c.id, { ...this.comments.get(c.id), ...c, ...this.delivery.get(c.id)?.state });
    this.renderConversation();
  }

  /** setDelivery records a reply's delivery state as heard now, and shows it. */
  setDelivery(commentID, status, reason) {
    const state = { delivery_status: status, error_reason: reason };
    this.delivery.set(commentID, { state, seq: ++this.seq });
    const c = this.comments.get(commentID);
    if (!c) return; // the comment itself comes later; addComment applies this
    Object.assign(c, state);
    this.paintDelivery(c);
  }

  renderComment(c) {
    const issue = this.issue;
    let who;
    if (c.kind === 'customer') who = customerLabel(issue?.customer);
    else who = this.ctx.user(c.author_id)?.name || (c.author_id === this.ctx.me.id ? this.ctx.me.name : 'Agent');
    const kind = { customer: 'Customer', reply: 'Reply', note: 'Internal note' }[c.kind] || c.kind;
    // The medium it crossed: a customer may write by SMS and by email on one issue.
    const medium = { sms: 'SMS', email: 'Email' }[this.ctx.channels().find((ch) => ch.id === c.channel_id)?.kind];
    const el = h('article', {
      class: `c c-${c.kind}${c.author_id != null && c.author_id === this.ctx.me.id ? ' c-mine' : ''}`,
      dataset: { commentId: String(c.id), kind: c.kind },
      'aria-label': `${kind} from ${who}`,
    },
    h('div', { class: 'c-head' },
      h('span', { class: 'c-who' }, who),
      h('span', { class: 'c-kind' }, medium ? `${kind} · ${medium}` : kind),
      timeElement(c.created_at),
      c.kind === 'reply' ? h('span', { class: 'delivery', role: 'status' }) : null),
    h('div', { class: 'c-body' }, c.kind === 'note' ? withMentions(c.body ?? '', c.mentions) : c.body ?? ''));
    if (c.kind === 'reply') {
      el.append(h('div', { class: 'delivery-fix' }));
      this.paintDelivery(c, el);
    }
    return el;
  }

  paintDelivery(c, el = $('conversation').querySelector(`[data-comment-id="${c.id}"]`)) {
    const badge = el?.querySelector('.delivery');
    if (!badge) return;
    const st = c.delivery_status || 'queued';
    badge.dataset.delivery = st;
    setText(badge, DELIVERY[st] || cap(st));
    badge.title = c.error_reason || '';
    // A reply that did not go (or may not have): say why, and let whoever may act on the
    // issue send it again or give up. An unknown outcome is never re-sent by itself.
    const fix = el.querySelector('.delivery-fix');
    clear(fix);
    if (!STUCK.includes(st)) return;
    if (c.error_reason) fix.append(h('span', { class: 'delivery-reason' }, c.error_reason));
    if (this.issue && allowed(this.issue, this.ctx.me).reply) {
      for (const [action, text] of [['retry', 'Send again'], ['discard', 'Discard']]) {
        fix.append(h('button', { type: 'button', class: 'btn btn-small', dataset: { deliveryAction: action } }, text));
      }
    }
  }

  /** fixDelivery retries or discards the delivery of reply c (found by its comment). */
  async fixDelivery(c, action) {
    const id = this.id;
    try {
      const { deliveries } = await this.ctx.api.request('GET', `/api/issues/${id}/deliveries`);
      const d = (deliveries || []).find((x) => x.comment_id === c.id);
      if (!d) throw new Error('this reply has no delivery to act on');
      const r = await this.ctx.api.request('POST', `/api/outbox/${d.id}/${action}`);
      if (id !== this.id) return;
      this.setDelivery(c.id, r.delivery?.delivery_status || c.delivery_status, r.delivery?.error_reason || '');
    } catch (err) {
      if (id === this.id) setText($('issue-error'), `${action === 'retry' ? 'Not sent again' : 'Not discarded'}: ${err.message}`);
    }
  }

  renderActivity(a) {
    return h('p', { class: 'act', dataset: { activityId: String(a.id), action: a.action } },
      h('span', null, activityText(a, this.ctx)), ' ', timeElement(a.created_at));
  }

  scrollDown(instant) {
    const root = $('conversation');
    if (instant) root.scrollTop = root.scrollHeight;
    else requestAnimationFrame(() => { root.scrollTop = root.scrollHeight; });
  }

  // ---- Preview and customer card ----

  renderPreview() {
    const issue = this.issue;
    const may = allowed(issue, this.ctx.me);
    const view = issueView(issue, null);
    const active = issue.status === 'open' || issue.status === 'in_progress';
    const snoozed = issue.snoozed_until && Date.parse(issue.snoozed_until) > Date.now();
    const btn = (action, text, primary) => h('button', {
      type: 'button', class: `btn btn-small${primary ? ' btn-primary' : ''}`, dataset: { action }, disabled: this.busy,
    }, text);
    const assignee = issue.assignee_id != null ? (issue.assignee_name || this.ctx.user(issue.assignee_id)?.name || 'someone') : 'Nobody';
    const channel = this.ctx.channels().find((c) => c.id === issue.channel_id);
    const prio = may.priority
      ? h('select', { id: 'issue-priority', class: 'input input-small', 'aria-label': 'Priority', disabled: this.busy },
        PRIORITIES.map((p) => h('option', { value: p, selected: p === issue.priority }, cap(p))))
      : h('span', { id: 'issue-priority-text' }, cap(issue.priority || 'normal'));
    const root = $('issue-preview');
    const hadFocus = root.contains(document.activeElement) ? document.activeElement.dataset?.action || document.activeElement.id : null;
    clear(root);
    root.dataset.state = view.state;
    root.dataset.status = issue.status;
    root.append(
      h('h2', { class: 'side-title' }, 'Issue'),
      h('p', { class: 'status-pill', id: 'issue-status', dataset: { state: view.state } }, `${statusName(issue.status)} · ${view.label}`),
      h('dl', { class: 'facts' },
        h('dt', null, 'Priority'), h('dd', null, prio),
        h('dt', null, 'Assignee'), h('dd', { id: 'issue-assignee' }, assignee),
        channel ? [h('dt', null, 'Channel'), h('dd', null, channel.name)] : null,
        h('dt', null, 'Opened'), h('dd', null, timeElement(issue.created_at)),
        issue.linked_issue_id ? [h('dt', null, 'Follows'), h('dd', null, h('a', { href: `#/issues/${issue.linked_issue_id}` }, `#${issue.linked_issue_id}`))] : null,
        snoozed ? [h('dt', null, 'Snoozed'), h('dd', { id: 'issue-snoozed' }, 'until ', timeElement(issue.snoozed_until))] : null),
      h('div', { class: 'side-actions' },
        active && may.take ? btn('take', 'Take It', true) : null,
        active && may.assign ? btn('assign', 'Assign It') : null,
        may.resolve ? btn('resolve', 'Resolve') : null,
        may.close ? btn('close', 'Mark as Closed') : null,
        may.reopen ? btn('reopen', 'Reopen') : null,
        active && may.reply ? btn('contacted', 'Reached by phone') : null,
        active && may.priority && snoozed ? btn('unsnooze', 'Unsnooze') : null,
        active && may.priority && !snoozed
          ? h('select', { id: 'issue-snooze', class: 'input input-small', 'aria-label': 'Snooze', disabled: this.busy },
            h('option', { value: '' }, 'Snooze…'), SNOOZES.map(([label]) => h('option', { value: label }, label)))
          : null),
      h('p', { id: 'action-error', class: 'form-error', role: 'alert' }),
      h('h3', { class: 'sub-title' }, 'SLA'),
      h('dl', { id: 'issue-sla', class: 'facts sla' }));
    this.paintSLA();
    if (hadFocus) (root.querySelector(`[data-action="${hadFocus}"]`) || $(hadFocus) || root.querySelector('button'))?.focus();
  }

  paintSLA() {
    const dl = $('issue-sla');
    if (!dl) return;
    clear(dl);
    const sla = this.sla && this.sla.issue_id === this.id ? this.sla : null;
    if (!sla) {
      dl.appendChild(h('dd', { class: 'muted' }, this.sla === undefined ? 'Loading…' : 'No SLA on this channel.'));
      return;
    }
    for (const [label, clock] of [['First response', sla.first_response], ['Resolution', sla.resolution]]) {
      if (!clock) continue;
      dl.append(h('dt', null, label), h('dd', { dataset: { sla: clock.state } }, slaText(clock)));
    }
  }

  renderCustomer() {
    const c = this.issue.customer;
    const root = $('customer-card');
    clear(root);
    if (!c) return;
    root.append(
      h('h2', { class: 'side-title' }, 'Customer'),
      h('p', { class: 'cust-name' }, customerLabel(c)),
      h('dl', { class: 'facts' },
        c.phone ? [h('dt', null, 'Phone'), h('dd', null, c.phone)] : null,
        c.email ? [h('dt', null, 'Email'), h('dd', null, c.email)] : null),
      h('button', { type: 'button', id: 'view-customer', class: 'btn btn-small', onclick: () => showCustomer(this.ctx, c.id) }, 'View Customer'));
  }

  // ---- Viewers ----

  /** sayViewing tells the issue's other viewers we are here, and whether we type. */
  sayViewing() {
    if (this.id == null || document.visibilityState !== 'visible') return;
    const id = this.id;
    const typing = this.typing;
    this.lastViewing = Date.now();
    this.ctx.api.viewing(id, typing).then((r) => {
      if (r) this.saidTyping = typing;
      // 204: the server passed nothing on (one announcement per 2 s). A change of typing
      // state must still get through: say it again once the window has passed.
      else if (id === this.id && typing !== this.saidTyping) {
        clearTimeout(this.viewingTimer);
        this.viewingTimer = setTimeout(() => this.sayViewing(), 2100);
      }
    }, () => {}); // best effort: presence, not data
  }

  setTyping(on) {
    clearTimeout(this.typingTimer);
    if (on) this.typingTimer = setTimeout(() => this.setTyping(false), 4000);
    if (on === this.typing) return;
    this.typing = on;
    this.sayViewing();
  }

  tick() {
    if (this.id == null) return;
    if (Date.now() - (this.lastViewing || 0) >= VIEWING_EVERY) this.sayViewing();
    let changed = false;
    for (const [id, v] of this.viewers) {
      if (Date.now() - v.at > VIEWER_GONE) {
        this.viewers.delete(id);
        changed = true;
      }
    }
    if (changed) this.paintViewers();
  }

  paintViewers() {
    const el = $('issue-viewers');
    clear(el);
    const list = [...this.viewers.entries()];
    if (!list.length) return;
    el.append(h('span', { class: 'eye', 'aria-hidden': 'true' }, '●'), ' ');
    list.forEach(([id, v], i) => {
      if (i) el.append(', ');
      el.append(h('span', { class: 'viewer', dataset: { userId: String(id), typing: String(v.typing) } }, v.typing ? `${v.name} is typing…` : v.name));
    });
    if (!list.some(([, v]) => v.typing)) el.append(list.length === 1 ? ' is viewing this issue' : ' are viewing this issue');
  }

  // ---- Composer and actions ----

  mode() {
    return $('mode-note').checked ? 'note' : 'reply';
  }

  /** setMode switches the composer and puts the cursor in it (keyboard shortcuts). */
  setMode(mode) {
    const reply = $('mode-reply');
    if (mode === 'reply' && reply.disabled) mode = 'note';
    $(mode === 'note' ? 'mode-note' : 'mode-reply').checked = true;
    this.paintComposer();
    $('issue-input').focus();
  }

  paintComposer() {
    const issue = this.issue;
    const canReply = !issue || allowed(issue, this.ctx.me).reply;
    const reply = $('mode-reply');
    reply.disabled = !canReply;
    if (!canReply && reply.checked) $('mode-note').checked = true;
    const note = this.mode() === 'note';
    $('issue-composer').dataset.mode = note ? 'note' : 'reply';
    const input = $('issue-input');
    const medium = issue && this.ctx.channels().find((c) => c.id === issue.channel_id)?.kind;
    const to = medium === 'email' ? 'by email' : medium === 'sms' ? 'by SMS' : '';
    input.placeholder = note ? 'Internal note: only agents see it. @ to mention someone.' : `Reply to the customer ${to}`.trim();
    setText($('issue-input-label'), note ? 'Internal note' : 'Reply to the customer');
    setText($('issue-send'), note ? 'Add note' : 'Send reply');
    let hint = 'Ctrl+Enter to send';
    if (!canReply) hint = `Only ${issue.assignee_name || 'the assignee'} or an admin may reply to the customer; notes are open to all.`;
    else if (!note && issue && issue.assignee_id == null) hint = 'Replying takes the issue. Ctrl+Enter to send';
    setText($('issue-hint'), hint);
  }

  async send() {
    const input = $('issue-input');
    const body = input.value;
    if (this.sending || this.id == null || !body.trim() || this.listOpen()) return;
    const id = this.id;
    const note = this.mode() === 'note';
    this.sending = true;
    $('issue-send').disabled = true;
    setText($('issue-error'), '');
    try {
      const data = note ? await this.ctx.api.note(id, body) : await this.ctx.api.reply(id, body, this.lastSeen());
      if (id !== this.id) return;
      input.value = '';
      this.setTyping(false);
      if (data?.comment) this.addComment(data.comment);
      if (data?.issue) this.setIssue({ ...this.issue, ...data.issue });
      this.scrollDown(true);
    } catch (err) {
      if (id === this.id) this.refused(err, note ? 'Note not added' : 'Not sent');
    } finally {
      this.sending = false;
      $('issue-send').disabled = false;
    }
  }

  /** refused shows a refusal; a collision also brings in what the agent had not seen. */
  refused(err, what, where = 'issue-error') {
    const fresh = err.status === 409 && Array.isArray(err.data?.new_comments) ? err.data.new_comments : null;
    if (fresh) {
      for (const c of fresh) this.comments.set(c.id, c);
      this.renderConversation();
      this.scrollDown(true);
      setText($(where), `${what}: new messages arrived while you were writing. They are shown now; read them and try again.`);
      $(where).dataset.collision = 'true';
      return;
    }
    delete $(where)?.dataset.collision;
    setText($(where), `${what}: ${err.message}`);
  }

  /**
   * act runs a preview action on the open issue (also from keyboard shortcuts). Actions
   * run one after another: t then r, pressed quickly, takes and then resolves.
   */
  act(action, value) {
    const run = () => this.run(action, value);
    this.chain = (this.chain || Promise.resolve()).then(run, run);
    return this.chain;
  }

  async run(action, value) {
    if (this.id == null || !this.issue) return;
    const id = this.id;
    const api = this.ctx.api;
    let call;
    switch (action) {
      case 'take': call = () => api.take(id); break;
      case 'resolve': call = () => api.resolve(id, this.lastSeen()); break;
      case 'close': call = () => api.close(id, this.lastSeen()); break;
      case 'reopen': call = () => api.reopen(id, this.lastSeen()); break;
      case 'priority': call = () => api.patchIssue(id, { priority: value }); break;
      case 'contacted': call = () => api.request('POST', `/api/issues/${id}/contacted`); break;
      case 'unsnooze': call = () => api.request('POST', `/api/issues/${id}/unsnooze`); break;
      case 'snooze': {
        const until = SNOOZES.find(([label]) => label === value)?.[1]();
        if (!until) return;
        call = () => api.request('POST', `/api/issues/${id}/snooze`, { until: until.toISOString() });
        break;
      }
      case 'assign': {
        const u = await this.deps.pickUser('Assign issue to');
        if (!u || id !== this.id) return;
        call = () => api.assign(id, u.id);
        break;
      }
      default: return;
    }
    this.busy = true;
    this.renderPreview();
    try {
      const data = await call();
      if (id !== this.id) return;
      this.busy = false;
      if (data?.issue) this.setIssue({ ...this.issue, ...data.issue });
      else this.renderPreview();
      this.onUpdated(this.issue);
    } catch (err) {
      if (id !== this.id) return;
      this.busy = false;
      this.renderPreview();
      this.refused(err, 'Refused', 'action-error');
    }
  }
}

/**
 * withMentions splits a note's text so that the handles the server resolved stand out;
 * every piece is still a text node.
 */
function withMentions(body, mentions) {
  const known = new Set((mentions || []).map((m) => String(m.handle).toLowerCase()));
  if (!known.size) return body;
  return body.split(/(@[a-z0-9._-]*[a-z0-9])/i).map((part) =>
    part.startsWith('@') && known.has(part.slice(1).toLowerCase()) ? h('span', { class: 'mention' }, part) : part);
}

/** slaText describes one SLA clock. */
function slaText(clock) {
  const due = new Date(clock.due_at);
  const at = due.toLocaleTimeString(undefined, { hour: 'numeric', minute: '2-digit' });
  const mins = Math.round(Math.abs(clock.remaining_seconds) / 60);
  const span = mins >= 120 ? `${Math.round(mins / 60)} h` : `${mins} min`;
  switch (clock.state) {
    case 'met': return 'Met';
    case 'breached': return `Breached (due ${at}, ${span} ago)`;
    case 'paused': return `Paused (${span} left)`;
    default: return clock.remaining_seconds < 0 ? `Overdue by ${span} (due ${at})` : `Due ${at} (in ${span})`;
  }
}

/** activityText is one line of the activity log, or '' for entries the comments show. */
export function activityText(a, ctx) {
  const d = a.details || {};
  const name = (id) => (id == null ? null : ctx.user(id)?.name || `user ${id}`);
  const actor = name(a.actor_id) || 'Switchboard';
  switch (a.action) {
    case 'created': return d.reason === 'split' ? 'Split out of another issue' : d.linked_issue_id ? `Issue opened (follows #${d.linked_issue_id})` : 'Issue opened';
    case 'assigned':
      if (d.assignee_id === a.actor_id) return `${actor} took the issue${d.via === 'reply' ? ' by replying' : ''}`;
      return `${actor} assigned it to ${name(d.assignee_id)}`;
    case 'unassigned': return `${actor} unassigned ${name(d.previous_assignee_id) || 'it'}`;
    case 'resolved': return `${actor} resolved the issue`;
    case 'closed': return a.actor_id == null ? 'Closed automatically' : `${actor} closed the issue`;
    case 'reopened': return a.actor_id == null ? 'Reopened: the customer wrote again' : `${actor} reopened the issue`;
    case 'status_changed': return `${actor} set the status to ${statusName(d.status)}`;
    case 'priority_changed': return `${actor} set the priority to ${cap(String(d.priority))}`;
    case 'contacted': return `${actor} reached the customer by phone`;
    case 'snoozed': return `${actor} snoozed the issue`;
    case 'unsnoozed': return 'Back from snooze';
    case 'merged': return `${actor} merged another issue into this one`;
    case 'merged_into': return `${actor} merged this issue into #${d.into_issue_id ?? ''}`;
    case 'split': return `${actor} split a message out into #${d.new_issue_id ?? ''}`;
    default: return ''; // customer_message, replied, note_added: the comment shows it
  }
}
