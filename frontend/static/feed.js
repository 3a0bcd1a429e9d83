// The feed of the open channel: messages in number order, older pages loaded on the way
// up, the "New messages" divider, sticking to the bottom, and the "↓ N new" pill.

import { api } from './api.js';
import { h, clear, setText } from './dom.js';
import { renderMessage, updateIssueChip } from './message.js';

const PAGE = 50;
const BOTTOM_SLACK = 48; // px from the bottom that still counts as "at the bottom"
const TOP_SLACK = 400; // px from the top that starts loading older messages

export class Feed {
  /**
   * els: {scroller, list, older, status, pill}
   * deps: {
   *   ctx: chip/message context {meID, users, onTake, onResolve, pending},
   *   lastRead(channelID) → the channel's current last_read,
   *   onLoaded(channelID, data) after the first page of a channel arrives,
   *   onReadable() when the user may have read to the bottom,
   *   onError(text, retry) / onClearError(),
   * }
   */
  constructor(els, deps) {
    this.els = els;
    this.deps = deps;
    this.channelID = null;
    this.gen = 0; // bumps on every open/leave/reload: stale answers are dropped
    this.loading = false;
    this.loadingOlder = false;
    this.hasMore = false;
    this.msgs = []; // ascending by number
    this.byID = new Map(); // id → {m, el}
    this.pending = []; // live messages that arrived while the first page loaded
    this.dividerNumber = null;
    this.divider = h('div', { class: 'new-messages-divider', role: 'separator', 'aria-label': 'New messages' },
      h('span', null, 'New messages'));
    this.empty = h('p', { class: 'feed-empty' }, 'No messages yet.');
    this.newCount = 0;
    this.stick = true;
    this.raf = 0;
    this.firstLoaded = false; // the open channel's first page has arrived

    const { scroller, older, pill, list } = els;
    this.onScroll = () => {
      if (this.raf) return;
      this.raf = requestAnimationFrame(() => {
        this.raf = 0;
        this.scrolled();
      });
    };
    scroller.addEventListener('scroll', this.onScroll, { passive: true });
    this.onOlderClick = () => this.loadOlder();
    older.addEventListener('click', this.onOlderClick);
    this.onPillClick = () => {
      this.scrollToBottom();
      els.scroller.focus({ preventScroll: true });
    };
    pill.addEventListener('click', this.onPillClick);
    // Stay pinned to the bottom while content or the viewport changes size (chips
    // re-rendering, the phone keyboard opening, the window resizing).
    this.resizer = new ResizeObserver(() => {
      if (this.stick && !this.loading) this.scrollToBottom(true);
    });
    this.resizer.observe(scroller);
    this.resizer.observe(list);
  }

  destroy() {
    this.leave();
    this.resizer.disconnect();
    this.els.scroller.removeEventListener('scroll', this.onScroll);
    this.els.older.removeEventListener('click', this.onOlderClick);
    this.els.pill.removeEventListener('click', this.onPillClick);
  }

  /** leave forgets the open channel (its divider goes with it). */
  leave() {
    this.gen++;
    this.channelID = null;
    this.loading = this.loadingOlder = false;
    this.hasMore = false;
    this.msgs = [];
    this.byID.clear();
    this.pending = [];
    this.dividerNumber = null;
    this.newCount = 0;
    this.stick = true;
    this.firstLoaded = false;
    clear(this.els.list);
    this.els.older.hidden = true;
    setText(this.els.status, '');
    this.els.pill.hidden = true;
  }

  /** open shows channel ch, loading its latest page. */
  async open(ch) {
    this.leave();
    this.channelID = ch.id;
    await this.loadLatest(true);
  }

  /** reload replaces the feed with the latest page (after a resync), keeping the divider. */
  async reload() {
    if (this.channelID == null) return;
    this.gen++;
    this.loadingOlder = false;
    this.els.older.disabled = false;
    if (!this.firstLoaded) {
      // The first page was still on its way: ask again, as a first load.
      await this.loadLatest(true);
      return;
    }
    const keepDivider = this.dividerNumber;
    const wasBottom = this.stick;
    await this.loadLatest(false, { keepDivider, wasBottom });
  }

  async loadLatest(first, keep) {
    const gen = this.gen;
    const id = this.channelID;
    this.loading = true;
    this.deps.onClearError();
    if (first) setText(this.els.status, 'Loading messages…');
    let data;
    try {
      data = await api.messages(id, null, PAGE);
    } catch (err) {
      if (gen !== this.gen) return;
      this.loading = false;
      setText(this.els.status, '');
      this.deps.onError(`Could not load messages: ${err.message}`, () => (first ? this.open({ id }) : this.reload()));
      return;
    }
    if (gen !== this.gen) return;
    this.loading = false;
    setText(this.els.status, '');
    const messages = Array.isArray(data.messages) ? data.messages : [];
    if (first) {
      this.dividerNumber = Number.isFinite(data.last_read) && messages.some((m) => m.number > data.last_read)
        ? data.last_read : null;
    } else {
      clear(this.els.list);
      this.msgs = [];
      this.byID.clear();
      this.dividerNumber = keep.keepDivider;
    }
    this.hasMore = !!data.has_more;
    this.firstLoaded = true;
    for (const m of messages) this.insert(m);
    for (const m of this.pending) this.insertLive(m);
    this.pending = [];
    this.afterChange();
    this.deps.onLoaded(id, data);

    if (first && this.divider.isConnected) {
      // Show the first unread message near the top, with a little context above it.
      this.els.scroller.scrollTop = Math.max(0, this.divider.offsetTop - 72);
    } else if (first || keep.wasBottom) {
      this.scrollToBottom(true);
    }
    this.stick = this.atBottom();
    this.fillViewport();
    if (this.stick) this.deps.onReadable();
  }

  /** loadOlder prepends the page before the oldest loaded message, keeping the view still. */
  async loadOlder() {
    if (this.loading || this.loadingOlder || !this.hasMore || this.msgs.length === 0) return;
    const gen = this.gen;
    const id = this.channelID;
    this.loadingOlder = true;
    this.els.older.disabled = true;
    setText(this.els.status, 'Loading earlier messages…');
    let data;
    try {
      data = await api.messages(id, this.msgs[0].number, PAGE);
    } catch (err) {
      if (gen !== this.gen) return;
      this.loadingOlder = false;
      this.els.older.disabled = false;
      setText(this.els.status, `Could not load earlier messages: ${err.message}`);
      return;
    }
    if (gen !== this.gen) return;
    this.loadingOlder = false;
    this.els.older.disabled = false;
    setText(this.els.status, '');
    const sc = this.els.scroller;
    const oldHeight = sc.scrollHeight;
    const oldTop = sc.scrollTop;
    for (const m of data.messages || []) this.insert(m);
    this.hasMore = !!data.has_more && (data.messages || []).length > 0;
    this.afterChange();
    sc.scrollTop = oldTop + (sc.scrollHeight - oldHeight);
    this.fillViewport();
  }

  /** fillViewport loads older pages until the feed can scroll (or there are none). */
  fillViewport() {
    const sc = this.els.scroller;
    if (this.hasMore && sc.scrollTop < TOP_SLACK) queueMicrotask(() => this.loadOlder());
  }

  /**
   * add puts a live message into the feed. It reports whether the message was new here.
   * Call it only for messages of the open channel.
   */
  add(m) {
    if (m.channel_id !== this.channelID) return false;
    if (this.loading) {
      this.pending.push(m);
      return true;
    }
    const wasBottom = this.stick;
    const mine = m.author_id != null && m.author_id === this.deps.ctx.meID;
    const seenByUser = wasBottom && document.visibilityState === 'visible';
    if (!this.insertLive(m)) return false;
    if (!mine && !seenByUser && this.dividerNumber == null) {
      const lr = this.deps.lastRead(this.channelID);
      if (m.number > lr) this.dividerNumber = lr;
    }
    this.afterChange();
    if (wasBottom || mine) {
      this.scrollToBottom(true);
    } else {
      this.newCount++;
      this.updatePill();
    }
    return true;
  }

  /** isReading: the feed is loaded, at the bottom and on screen. */
  isReading() {
    return this.channelID != null && !this.loading && this.stick && document.visibilityState === 'visible';
  }

  highest() {
    return this.msgs.length ? this.msgs[this.msgs.length - 1].number : null;
  }

  /** applyIssue updates the chips of every message of the issue. */
  applyIssue(issue) {
    for (const { m, el } of this.byID.values()) {
      if (!m.issue || m.issue.id !== issue.id) continue;
      m.issue = { ...m.issue, ...issue };
      const chip = el.querySelector('.issue-chip');
      if (chip) updateIssueChip(chip, m.issue, this.deps.ctx);
    }
  }

  /** refreshIssue re-renders the chips of an issue from what the feed holds (pending flag changed). */
  refreshIssue(issueID) {
    for (const { m, el } of this.byID.values()) {
      if (!m.issue || m.issue.id !== issueID) continue;
      const chip = el.querySelector('.issue-chip');
      if (chip) updateIssueChip(chip, m.issue, this.deps.ctx);
    }
  }

  /**
   * insertLive inserts a message that did not come in a page. One older than the loaded
   * range (a replay) waits for its page: inserting it would hide the gap before it.
   */
  insertLive(m) {
    if (this.hasMore && this.msgs.length && m.number < this.msgs[0].number) return false;
    return this.insert(m);
  }

  insert(m) {
    if (!m || m.id == null || this.byID.has(m.id)) return false;
    const msgs = this.msgs;
    let i = msgs.length;
    while (i > 0 && msgs[i - 1].number > m.number) i--;
    const el = renderMessage(m, this.deps.ctx);
    const next = i < msgs.length ? this.byID.get(msgs[i].id).el : null;
    msgs.splice(i, 0, m);
    this.byID.set(m.id, { m, el });
    this.els.list.insertBefore(el, next);
    return true;
  }

  afterChange() {
    // The divider goes above the first message after the read mark.
    const dn = this.dividerNumber;
    const first = dn == null ? null : this.msgs.find((m) => m.number > dn);
    if (first) {
      const el = this.byID.get(first.id).el;
      if (el.previousSibling !== this.divider) this.els.list.insertBefore(this.divider, el);
    } else if (this.divider.isConnected) {
      this.divider.remove();
    }
    if (this.msgs.length === 0) {
      if (!this.empty.isConnected) this.els.list.appendChild(this.empty);
    } else if (this.empty.isConnected) {
      this.empty.remove();
    }
    this.els.older.hidden = !this.hasMore;
  }

  atBottom() {
    const sc = this.els.scroller;
    return sc.scrollHeight - sc.scrollTop - sc.clientHeight <= BOTTOM_SLACK;
  }

  scrollToBottom(instant) {
    const sc = this.els.scroller;
    if (instant || matchMedia('(prefers-reduced-motion: reduce)').matches) sc.scrollTop = sc.scrollHeight;
    else sc.scrollTo({ top: sc.scrollHeight, behavior: 'smooth' });
    this.stick = true;
    this.newCount = 0;
    this.updatePill();
  }

  scrolled() {
    if (this.channelID == null) return;
    const wasStuck = this.stick;
    this.stick = this.atBottom();
    if (this.stick) {
      if (this.newCount) {
        this.newCount = 0;
        this.updatePill();
      }
      if (!wasStuck || this.msgs.length) this.deps.onReadable();
    }
    if (this.els.scroller.scrollTop < TOP_SLACK) this.loadOlder();
  }

  updatePill() {
    const pill = this.els.pill;
    pill.hidden = this.newCount === 0;
    setText(pill, `↓ ${this.newCount} new`);
    pill.setAttribute('aria-label', `${this.newCount} new message${this.newCount === 1 ? '' : 's'}: jump to the latest`);
  }
}
