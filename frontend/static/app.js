// Switchboard's web app: login, the sidebar, and the main area's views — a channel's live
// feed, the issue view, the tracker and the full-width pages — chosen by the URL's hash.
// State comes from the JSON API once, then stays current through the live connection
// (see live.js); a resync from the server reloads it. Every module gets one context
// object (ctx, see frontend/README.md) and hears live events through ctx.onEvent.

import { api, onUnauthorized } from './api.js';
import { h, clear, setText } from './dom.js';
import { Live } from './live.js';
import { Feed } from './feed.js';
import { setChipError, allowed } from './message.js';
import { renderChannelList, updateBadge, markCurrent, channelHref, kindName } from './sidebar.js';
import { mountNotifications } from './notify.js';
import { People, pickUser, newChannel, channelMembers } from './people.js';
import { mountShortcuts } from './shortcuts.js';

const $ = (id) => document.getElementById(id);

let session = null;

// ---- Boot and login --------------------------------------------------------------------

async function boot() {
  onUnauthorized(() => session?.expire());
  $('login-form').addEventListener('submit', onLoginSubmit);
  $('boot-retry').addEventListener('click', checkSession);
  await checkSession();
}

async function checkSession() {
  showScreen('boot');
  setText($('boot-text'), 'Loading Switchboard…');
  $('boot-retry').hidden = true;
  try {
    const data = await api.me();
    startSession(data.user);
  } catch (err) {
    if (err.status === 401) {
      showLogin();
    } else {
      setText($('boot-text'), `Switchboard is not answering: ${err.message}`);
      $('boot-retry').hidden = false;
    }
  }
}

function showScreen(name) {
  $('boot').hidden = name !== 'boot';
  $('login-screen').hidden = name !== 'login';
  $('app').hidden = name !== 'app';
}

function showLogin(message = '') {
  showScreen('login');
  document.title = 'Sign in · Switchboard';
  setLoginError(message);
  const email = $('email');
  (email.value ? $('password') : email).focus();
}

function setLoginError(text) {
  setText($('login-error'), text);
  for (const id of ['email', 'password']) {
    const input = $(id);
    if (text) {
      input.setAttribute('aria-invalid', 'true');
      input.setAttribute('aria-describedby', 'login-error');
    } else {
      input.removeAttribute('aria-invalid');
      input.removeAttribute('aria-describedby');
    }
  }
}

let loginBlockedUntil = 0;

async function onLoginSubmit(e) {
  e.preventDefault();
  const form = e.currentTarget;
  const button = $('login-submit');
  if (button.disabled) return;
  const email = $('email').value.trim();
  const password = $('password').value;
  if (!email || !password) {
    setLoginError('Enter your email and password.');
    (email ? $('password') : $('email')).focus();
    return;
  }
  setLoginError('');
  button.disabled = true;
  setText(button, 'Signing in…');
  form.setAttribute('aria-busy', 'true');
  let wait = 0;
  try {
    const data = await api.login(email, password);
    $('password').value = '';
    startSession(data.user);
  } catch (err) {
    let msg = err.message;
    if (err.status === 429 && err.retryAfter) {
      wait = err.retryAfter;
      if (!/try again/i.test(msg)) msg += `. Try again in ${formatWait(wait)}.`;
    }
    setLoginError(msg);
    if (err.status === 401) $('password').select();
  } finally {
    form.removeAttribute('aria-busy');
    setText(button, 'Sign in');
    if (wait > 0) {
      loginBlockedUntil = Date.now() + wait * 1000;
      setTimeout(() => {
        if (Date.now() >= loginBlockedUntil) button.disabled = false;
      }, wait * 1000);
    } else {
      button.disabled = false;
    }
  }
}

function formatWait(s) {
  if (s < 60) return `${s} second${s === 1 ? '' : 's'}`;
  const m = Math.ceil(s / 60);
  return `${m} minute${m === 1 ? '' : 's'}`;
}

function startSession(user) {
  session?.destroy();
  session = new Session(user);
  session.start();
}

// ---- A signed-in session ---------------------------------------------------------------

class Session {
  constructor(me) {
    this.me = me;
    this.users = new Map(); // id → user
    this.channels = new Map(); // id → channel (mutable: unread, last_read, last_number)
    this.order = []; // channels in API order
    this.pendingIssues = new Set();
    this.drafts = new Map(); // channel id → unsent composer text
    this.readInFlight = new Map(); // channel id → number being marked read
    this.readTimer = 0;
    this.reloadTimer = 0;
    this.lastAuthCheck = 0;
    this.ready = false; // the first snapshot is applied
    this.snapshotStarted = false;
    this.hadHello = false;
    this.resyncWhenReady = false;
    this.buffer = []; // live objects received before the snapshot was applied
    this.sending = false;
    this.ac = new AbortController();
    this.ended = false;
    this.listeners = new Map(); // live object type → Set of functions (ctx.onEvent)
    this.view = null; // 'channel' | 'page'
    this.pageCleanup = null;
    this.pageKey = '';
    this.stopNotifications = null;

    // The one context object every module receives (documented in frontend/README.md).
    this.ctx = {
      api,
      me,
      signal: this.ac.signal,
      users: () => [...this.users.values()],
      user: (id) => this.users.get(Number(id)) || null,
      channels: () => this.order.slice(),
      onEvent: (type, fn) => this.onEvent(type, fn),
      navigate: (hash) => { if (location.hash !== hash) location.hash = hash; else this.route(); },
      isConnected: () => this.live.live,
      // Beyond the documented members: for the shell's own modules.
      addChannel: (ch) => this.addChannel(ch),
      toast: (text) => this.flash(text),
    };

    const ctx = {
      meID: me.id,
      me,
      users: this.users,
      pending: (id) => this.pendingIssues.has(id),
      onAction: (action, id, chip) => this.chipAction(action, id, chip),
      onCustomer: (id) => this.loadModule(() => import('./customer.js'), $('app-error'))
        .then((m) => m && !this.ended && m.showCustomer(this.ctx, id)),
    };
    this.feed = new Feed({
      scroller: $('feed'), list: $('messages'), older: $('load-older'), status: $('feed-status'), pill: $('new-pill'),
    }, {
      ctx,
      lastRead: (id) => this.channels.get(id)?.last_read ?? 0,
      onLoaded: (id, data) => this.onFeedLoaded(id, data),
      onReadable: () => this.scheduleMarkRead(),
      onError: (text, retry) => this.setError(text, retry),
      onClearError: () => this.setError(''),
    });
    this.live = new Live({
      onObject: (obj) => this.onLive(obj),
      onOpen: () => {
        this.setOffline(false);
        // Users have no live events: a reconnect is the moment to catch up on new
        // coworkers and new names (the first hello comes before start loads them).
        if (this.ready) this.loadUsers();
        this.emit({ type: 'live.connected' });
      },
      onDown: (info) => {
        this.onLiveDown(info);
        this.emit({ type: 'live.disconnected', ...info });
      },
    });
    this.people = new People(this.ctx, $('people-list'));
    this.issueList = null; // the issue view's modules load when it first opens
    this.issueView = null;
    this.issueModules = null;
    this.trackerCleanup = null;
  }

  /** loadIssueView imports the issue view's modules once and builds its parts. */
  loadIssueView() {
    this.issueModules ??= Promise.all([import('./issues-list.js'), import('./issue.js')]).then(([list, view]) => {
      if (this.ended) return true;
      this.issueList = new list.IssueList(this.ctx);
      this.issueList.setChannels(this.order);
      this.issueView = new view.IssueView(this.ctx, {
        live: this.live,
        pickUser: (title) => pickUser(this.ctx, title, this.people),
        onIssue: (issue) => {
          this.issueList.apply(issue);
          this.feed.applyIssue(issue);
        },
      });
      return true;
    }, (err) => {
      this.issueModules = null; // try again next time
      throw err;
    });
    return this.issueModules;
  }

  async start() {
    showScreen('app');
    setText($('me-name'), this.me.name || this.me.email || '');
    $('me-name').title = this.me.email || '';
    setText($('sidebar-me'), `Signed in as ${this.me.name || this.me.email || ''}`);
    $('admin-link').hidden = this.me.role !== 'admin';
    this.wire();
    try {
      this.stopNotifications = mountNotifications(this.ctx, $('bell-slot'), $('toasts'));
    } catch (err) {
      console.error('switchboard: the notifications did not start', err);
    }
    this.feed.leave();
    setText($('channel-title'), '\u00a0');
    setText($('feed-status'), 'Loading channels…');

    // Connect first and take the snapshot after the hello, so that nothing falls between
    // them; live objects that arrive meanwhile wait in the buffer.
    this.hello = new Promise((resolve) => { this.resolveHello = resolve; });
    this.offlineTimer = setTimeout(() => { if (!this.live.live) this.setOffline(true); }, 2000);
    this.live.start();
    await Promise.race([this.hello, sleep(2500)]);
    if (this.ended) return;
    this.loadUsers();
    this.people.load();
    await this.loadChannels();
  }

  wire() {
    const signal = this.ac.signal;
    window.addEventListener('hashchange', () => this.route(), { signal });
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible') this.scheduleMarkRead();
      this.updateTitle();
    }, { signal });
    window.addEventListener('focus', () => this.scheduleMarkRead(), { signal });
    $('logout').addEventListener('click', () => this.logout(), { signal });
    $('flash-close').addEventListener('click', () => this.flash(''), { signal });
    // On a phone the sidebar covers the page: following one of its links closes it.
    for (const id of ['nav-links', 'people-list']) {
      $(id).addEventListener('click', (e) => {
        if (e.target.closest('a, button') && document.body.classList.contains('nav-open')) this.setNav(false);
      }, { signal });
    }
    $('channel-members').addEventListener('click', () => {
      const ch = this.channels.get(this.feed.channelID);
      if (ch) channelMembers(this.ctx, ch, this.people);
    }, { signal });
    mountShortcuts({
      j: () => this.step(1),
      k: () => this.step(-1),
      t: () => this.shortcutAction('take'),
      r: () => this.shortcutAction('resolve'),
      R: () => this.compose('reply'),
      e: () => this.compose('reply'),
      n: () => this.compose('note'),
    }, signal);
    document.querySelector('.skip-link').addEventListener('click', (e) => {
      e.preventDefault(); // keep the route in the hash
      const target = { issues: this.issueView?.id != null ? 'conversation' : 'f-q', tracker: 'tracker-view', page: 'page' }[this.view] || 'feed';
      $(target).focus();
    }, { signal });

    const toggle = $('nav-toggle');
    toggle.addEventListener('click', () => this.setNav(!document.body.classList.contains('nav-open')), { signal });
    $('nav-scrim').addEventListener('click', () => this.setNav(false), { signal });
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && document.body.classList.contains('nav-open')) {
        this.setNav(false);
        toggle.focus();
      }
    }, { signal });
    $('channel-list').addEventListener('click', (e) => {
      const link = e.target.closest('[data-channel-id]');
      if (!link) return;
      if (document.body.classList.contains('nav-open')) {
        this.setNav(false);
        $('feed').focus({ preventScroll: true }); // the link just went out of view
      }
      // Re-selecting the open channel (hash unchanged) still jumps to its latest messages.
      if (Number(link.dataset.channelId) === this.feed.channelID) this.feed.scrollToBottom(true);
    }, { signal });

    const form = $('composer');
    const input = $('composer-input');
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.send();
    }, { signal });
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.altKey && !e.ctrlKey && !e.metaKey && !e.isComposing) {
        e.preventDefault();
        this.send();
      }
    }, { signal });
    input.addEventListener('input', () => {
      setText($('composer-error'), '');
      this.fitComposer();
    }, { signal });
  }

  /** fitComposer grows the textarea with its text where CSS field-sizing is missing. */
  fitComposer() {
    if (CSS.supports('field-sizing', 'content')) return;
    const input = $('composer-input');
    input.style.height = 'auto';
    input.style.height = `${Math.min(input.scrollHeight + 2, 180)}px`;
  }

  setNav(open) {
    document.body.classList.toggle('nav-open', open);
    $('nav-toggle').setAttribute('aria-expanded', String(open));
    $('nav-toggle').setAttribute('aria-label', open ? 'Hide channels' : 'Show channels');
    $('nav-scrim').hidden = !open;
    if (open) {
      const target = $('channel-list').querySelector('[aria-current="page"]') || $('channel-list').querySelector('a');
      target?.focus();
    }
  }

  destroy() {
    if (this.ended) return;
    this.ended = true;
    this.live.stop();
    this.leavePage();
    this.issueView?.leave();
    this.leaveTracker();
    try {
      this.stopNotifications?.();
    } catch (err) {
      console.error('switchboard: stopping the notifications failed', err);
    }
    this.stopNotifications = null;
    this.ac.abort();
    this.listeners.clear();
    clearTimeout(this.readTimer);
    clearTimeout(this.reloadTimer);
    clearTimeout(this.offlineTimer);
    this.feed.destroy();
    clear($('channel-list'));
    clear($('people-list'));
    clear($('issue-list'));
    $('issue-filters').reset();
    this.flash('');
    setText($('me-name'), '');
    setText($('sidebar-me'), '');
    this.setOffline(false);
    this.setError('');
    $('composer').hidden = true;
    $('composer-input').value = '';
    setText($('composer-error'), '');
    document.body.classList.remove('nav-open');
    document.title = 'Switchboard';
    if (session === this) session = null;
  }

  /** expire ends the session because the server no longer knows it. */
  expire() {
    if (this.ended) return;
    this.destroy();
    showLogin('Your session has ended. Please sign in again.');
  }

  async logout() {
    const button = $('logout');
    button.disabled = true;
    this.live.stop();
    try {
      await api.logout();
    } catch (err) {
      console.warn('switchboard: logout request failed', err);
    } finally {
      button.disabled = false;
    }
    this.destroy();
    showLogin('');
  }

  // ---- Snapshot ----

  async loadUsers() {
    try {
      const data = await api.users();
      for (const u of data.users || []) this.users.set(u.id, u);
      if (!this.ended) {
        this.people.render();
        this.people.paint();
      }
    } catch (err) {
      if (err.status !== 401) console.warn('switchboard: could not load users', err);
    }
  }

  async loadChannels() {
    this.snapshotStarted = true;
    let data;
    try {
      data = await api.channels();
    } catch (err) {
      if (this.ended || err.status === 401) return;
      setText($('feed-status'), '');
      this.setError(`Could not load your channels: ${err.message}`, () => this.loadChannels());
      return;
    }
    if (this.ended) return;
    this.setError('');
    setText($('feed-status'), '');
    this.setChannels(data.channels || []);
    if (!this.ready) {
      this.ready = true;
      const buffered = this.buffer;
      this.buffer = [];
      for (const obj of buffered) this.handle(obj);
    }
    this.route();
    if (this.resyncWhenReady) {
      this.resyncWhenReady = false;
      this.resync();
    }
  }

  setChannels(list) {
    this.order = list.map((c) => ({
      ...c,
      unread: Number(c.unread) || 0,
      last_read: Number(c.last_read) || 0,
      last_number: Number(c.last_number) || 0,
    }));
    this.channels = new Map(this.order.map((c) => [c.id, c]));
    this.renderChannels();
    this.issueList?.setChannels(this.order);
    this.updateTitle();
  }

  renderChannels() {
    renderChannelList($('channel-list'), this.order, this.view === 'channel' ? this.feed.channelID : null, {
      dot: (id) => this.people.dot(id),
      onNewChannel: () => newChannel(this.ctx),
      onNewDirect: async () => {
        const u = await pickUser(this.ctx, 'New direct message', this.people);
        if (u) this.people.openDirect(u.id);
      },
    });
  }

  /** addChannel adds (or refreshes) one channel, such as a new direct message. */
  addChannel(ch) {
    if (!ch || ch.id == null) return;
    const old = this.channels.get(ch.id);
    const c = { unread: 0, last_read: 0, last_number: 0, ...old, ...ch };
    c.unread = Number(c.unread) || 0;
    c.last_read = Number(c.last_read) || 0;
    c.last_number = Number(c.last_number) || 0;
    this.channels.set(c.id, c);
    const i = this.order.findIndex((x) => x.id === c.id);
    if (i >= 0) this.order[i] = c;
    else this.order.push(c);
    this.renderChannels();
    this.updateTitle();
  }

  removeChannel(id) {
    // The open connection would go on hearing the channel until it reconnects.
    this.live.send({ type: 'unsubscribe', topic: `channel:${id}` });
    if (!this.channels.delete(id)) return;
    this.order = this.order.filter((c) => c.id !== id);
    this.renderChannels();
    if (this.feed.channelID === id) {
      this.feed.leave();
      if (this.view === 'channel') history.replaceState(null, '', '#/');
      this.route();
    }
    this.updateTitle();
  }

  /** flash shows a short message at the top ('' hides it). */
  flash(text) {
    clearTimeout(this.flashTimer);
    setText($('flash-text'), text);
    $('flash').hidden = !text;
    if (text) this.flashTimer = setTimeout(() => this.flash(''), 10000);
  }

  /** resync reloads the channels and the open feed (the server could not replay). */
  async resync() {
    const openID = this.feed.channelID;
    await this.loadChannels();
    if (this.ended) return;
    if (openID != null && this.feed.channelID === openID) await this.feed.reload();
  }

  scheduleChannelReload() {
    clearTimeout(this.reloadTimer);
    this.reloadTimer = setTimeout(() => this.loadChannels(), 300);
  }

  // ---- Routing ----

  route() {
    if (!this.ready) return;
    const pm = /^#\/(preferences|stats|admin)(?:\/([\w-]+))?$/.exec(location.hash);
    if (pm) {
      this.openPage(pm[1], { section: pm[2] || '' });
      return;
    }
    const im = /^#\/issues(?:\/(\d+))?$/.exec(location.hash);
    if (im) {
      this.openIssues(im[1] ? Number(im[1]) : null);
      return;
    }
    if (location.hash === '#/tracker') {
      this.openTracker();
      return;
    }
    const m = /^#\/channels\/(\d+)$/.exec(location.hash);
    if (!m && this.feed.channelID != null && !location.hash.startsWith('#/')) return; // an in-page anchor
    let ch = m ? this.channels.get(Number(m[1])) : null;
    if (!ch) {
      ch = this.order.find((c) => c.kind === 'sms') || this.order[0];
      if (!ch) {
        this.feed.leave();
        setText($('channel-title'), 'No channels');
        setText($('channel-kind'), '');
        $('composer').hidden = true;
        return;
      }
      history.replaceState(null, '', channelHref(ch.id));
    }
    this.openChannel(ch);
  }

  /** showView shows one of the main area's views and marks its sidebar link. */
  showView(name, route = '') {
    if (this.view !== 'page' || name !== 'page') this.leavePage();
    if (name !== 'issues') this.issueView?.leave();
    if (name !== 'tracker') this.leaveTracker();
    const was = this.view;
    this.view = name;
    $('main').hidden = name !== 'channel';
    $('issue-view').hidden = name !== 'issues';
    $('tracker-view').hidden = name !== 'tracker';
    $('page').hidden = name !== 'page';
    if (was !== name && document.body.classList.contains('nav-open')) this.setNav(false);
    for (const a of document.querySelectorAll('#nav-links [data-route]')) {
      if (a.dataset.route === route) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    if (name !== 'channel') markCurrent($('channel-list'), null);
  }

  /** openIssues shows the issue view, with issue id open (or none). */
  async openIssues(id) {
    const first = this.view !== 'issues';
    this.showView('issues', 'issues');
    if (!this.issueView) {
      await this.loadModule(() => this.loadIssueView(), $('issue-count'));
      // The route may have moved on meanwhile; the newer call does the rest.
      const want = id == null ? '#/issues' : `#/issues/${id}`;
      if (!this.issueView || this.ended || this.view !== 'issues' || location.hash !== want) return;
    }
    if (first || !this.issueList.loaded) this.issueList.load();
    $('issue-empty').hidden = id != null;
    $('conversation').hidden = id == null;
    $('issue-composer').hidden = id == null;
    $('issue-side').hidden = id == null;
    this.issueList.select(id);
    if (id == null) {
      this.issueView.leave();
      setText($('issue-title'), 'Issues');
      this.setViewTitle('Issues');
      return;
    }
    this.issueView.open(id);
    this.setViewTitle(`Issue #${id}`);
  }

  async openTracker() {
    if (this.view === 'tracker') return;
    this.showView('tracker', 'tracker');
    this.setViewTitle('Tracker');
    const mod = await this.loadModule(() => import('./tracker.js'), $('tracker-view'));
    if (mod && this.view === 'tracker' && !this.trackerCleanup) this.trackerCleanup = mod.mountTracker($('tracker-view'), this.ctx);
  }

  /**
   * loadModule imports a module that the first page load leaves out (the tracker and the
   * full-width pages); a failure is shown in el.
   */
  async loadModule(load, el) {
    try {
      return await load();
    } catch (err) {
      console.error('switchboard: could not load a module', err);
      clear(el);
      el.appendChild(h('p', { class: 'page-missing', role: 'alert' }, 'This page could not be loaded. Check your connection and try again.'));
      return null;
    }
  }

  leaveTracker() {
    this.trackerCleanup?.();
    this.trackerCleanup = null;
    clear($('tracker-view'));
  }

  setViewTitle(text) {
    this.viewTitle = text;
    this.updateTitle();
  }

  /** step moves to the next (1) or previous (-1) issue, or message in a feed (j / k). */
  step(delta) {
    if (this.view === 'issues') {
      const id = this.issueList?.neighbor(delta);
      if (id != null) this.ctx.navigate(`#/issues/${id}`);
      return;
    }
    if (this.view !== 'channel') return;
    const msgs = [...$('messages').querySelectorAll('[data-message-id]')];
    if (!msgs.length) return;
    const at = msgs.indexOf(document.activeElement?.closest?.('[data-message-id]'));
    const next = msgs[at < 0 ? (delta > 0 ? msgs.length - 1 : msgs.length - 1) : Math.min(msgs.length - 1, Math.max(0, at + delta))];
    next.tabIndex = -1;
    next.focus();
  }

  /** shortcutAction runs take or resolve on the open issue, or the focused message's. */
  shortcutAction(action) {
    if (this.view === 'issues') {
      const issue = this.issueView?.issue;
      if (!issue) return;
      if (allowed(issue, this.me)[action]) this.issueView.act(action);
      else this.flash(action === 'take' ? 'You cannot take this issue.' : 'You cannot resolve this issue.');
      return;
    }
    const chip = document.activeElement?.closest?.('[data-message-id]')?.querySelector('.issue-chip');
    if (!chip) return;
    const b = chip.querySelector(`[data-action="${action}"]`);
    if (b && !b.hidden && !b.disabled) b.click();
    else this.flash(action === 'take' ? 'You cannot take this issue.' : 'You cannot resolve this issue.');
  }

  compose(mode) {
    if (this.view === 'issues' && this.issueView?.id != null) this.issueView.setMode(mode);
    else if (this.view === 'channel' && !$('composer').hidden) $('composer-input').focus();
  }

  /** openPage renders a full-width page from pages.js (preferences, stats, admin). */
  async openPage(name, params) {
    const key = `${name}/${params.section}`;
    if (this.view === 'page' && this.pageKey === key) return;
    this.showView('page', name);
    this.leavePage();
    this.pageKey = key;
    const el = $('page');
    clear(el);
    const mod = await this.loadModule(() => import('./pages.js'), el);
    if (!mod || this.ended || this.view !== 'page' || this.pageKey !== key) return;
    const page = mod.pages[name];
    if (!page || typeof page.render !== 'function') {
      el.appendChild(h('p', { class: 'page-missing' }, 'This page is not available yet.'));
      this.setViewTitle('');
      return;
    }
    this.setViewTitle(page.title || name);
    try {
      const cleanup = page.render(el, this.ctx, params);
      this.pageCleanup = typeof cleanup === 'function' ? cleanup : null;
    } catch (err) {
      console.error('switchboard: rendering the page failed', name, err);
      el.appendChild(h('p', { class: 'page-missing', role: 'alert' }, `This page failed to load: ${err.message}`));
    }
  }

  leavePage() {
    const cleanup = this.pageCleanup;
    this.pageCleanup = null;
    this.pageKey = '';
    if (cleanup) {
      try {
        cleanup();
      } catch (err) {
        console.error('switchboard: leaving the page failed', err);
      }
    }
  }

  openChannel(ch) {
    this.showView('channel');
    markCurrent($('channel-list'), ch.id);
    setText($('channel-title'), ch.kind === 'team' ? `# ${ch.name}` : ch.name);
    setText($('channel-kind'), kindName(ch.kind));
    $('channel-members').hidden = ch.kind !== 'team';
    if (this.feed.channelID === ch.id) {
      this.updateTitle();
      this.scheduleMarkRead(); // back from another view: what arrived meanwhile is read now
      return;
    }

    const input = $('composer-input');
    if (this.feed.channelID != null) this.drafts.set(this.feed.channelID, input.value);
    const canPost = ch.kind === 'team' || ch.kind === 'direct';
    $('composer').hidden = !canPost;
    if (canPost) {
      input.value = this.drafts.get(ch.id) || '';
      this.fitComposer();
      const label = ch.kind === 'team' ? `Message #${ch.name}` : `Message ${ch.name}`;
      input.placeholder = label;
      setText($('composer-label'), label);
      setText($('composer-error'), '');
    }
    this.feed.open(ch); // sets feed.channelID at once; the messages follow
    this.updateTitle();
  }

  onFeedLoaded(id, data) {
    const ch = this.channels.get(id);
    if (!ch) return;
    const lr = Number(data.last_read);
    if (Number.isFinite(lr) && lr > ch.last_read) ch.last_read = lr;
    const top = this.feed.highest();
    if (top != null && top > ch.last_number) ch.last_number = top;
  }

  // ---- Live events ----

  /** onEvent registers fn for live objects of type; it returns the unsubscribe function. */
  onEvent(type, fn) {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, (set = new Set()));
    const entry = (obj) => fn(obj);
    set.add(entry);
    return () => set.delete(entry);
  }

  emit(obj) {
    const set = this.listeners.get(obj.type);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(obj);
      } catch (err) {
        console.error('switchboard: a live event handler failed', obj.type, err);
      }
    }
  }

  onLive(obj) {
    this.emit(obj);
    if (obj.type === 'hello') {
      this.resolveHello?.();
      const late = !this.hadHello && this.snapshotStarted;
      this.hadHello = true;
      // The very first hello came after the snapshot was asked for: events between the
      // two may be missing, so take the snapshot again (now, or once the first is in).
      if (late && this.ready) this.resync();
      else if (late) this.resyncWhenReady = true;
      return;
    }
    if (!this.ready) {
      this.buffer.push(obj);
      return;
    }
    this.handle(obj);
  }

  handle(obj) {
    const data = obj.data || {};
    switch (obj.type) {
      case 'resync':
        this.resync();
        break;
      case 'message.created':
        if (data.message) this.onMessage(data.message);
        break;
      case 'issue.updated':
        if (data.issue) this.feed.applyIssue(data.issue);
        break;
      case 'channel.read':
        this.onRead(data);
        break;
      case 'channel.added':
        if (data.channel) {
          this.addChannel(data.channel);
          // The connection follows channels as of its start: follow this one now. Events
          // between the membership and the subscription are read once it is answered.
          this.live.send({ type: 'subscribe', topic: `channel:${data.channel.id}` });
        }
        break;
      case 'channel.removed':
        this.removeChannel(Number(data.channel_id));
        break;
      case 'subscribed':
        if (/^channel:\d+$/.test(obj.topic || '')) {
          const id = Number(obj.topic.slice(8));
          this.scheduleChannelReload();
          if (this.feed.channelID === id) this.feed.reload();
        }
        break;
      default:
        break; // events this screen does not show
    }
  }

  onMessage(m) {
    const ch = this.channels.get(m.channel_id);
    if (!ch) {
      this.scheduleChannelReload(); // a channel we did not know, such as a new direct message
      return;
    }
    const open = this.feed.channelID === ch.id;
    if (open) this.feed.add(m);
    // Message numbers make this idempotent: a replayed or already-loaded message is at or
    // below last_number and counts nothing.
    if (m.number > ch.last_number) {
      ch.last_number = m.number;
      const mine = m.author_id != null && m.author_id === this.me.id;
      if (!mine && m.number > ch.last_read && !(open && this.reading())) {
        ch.unread++;
        (ch.counted ??= new Set()).add(m.number);
        this.badge(ch);
      }
    }
    if (open) this.scheduleMarkRead();
  }

  onRead(d) {
    const ch = this.channels.get(d.channel_id);
    if (!ch || !Number.isFinite(d.last_read) || d.last_read < ch.last_read) return;
    ch.last_read = d.last_read;
    if (Number.isFinite(d.unread)) {
      // The server counted up to message as_of. Messages this tab counted itself that are
      // newer than that (they arrived while the answer was on its way) still count.
      const asOf = Number.isFinite(d.as_of) ? d.as_of : Infinity;
      let newer = 0;
      for (const n of ch.counted ?? []) {
        if (n <= Math.max(asOf, ch.last_read) || asOf === Infinity) ch.counted.delete(n);
        else newer++;
      }
      ch.unread = d.unread + newer;
    }
    this.badge(ch);
  }

  badge(ch) {
    updateBadge($('channel-list').querySelector(`[data-channel-id="${ch.id}"]`), ch.unread);
    this.updateTitle();
  }

  updateTitle() {
    let total = 0;
    for (const c of this.order) total += c.unread;
    const open = this.view === 'channel' ? this.channels.get(this.feed.channelID) : null;
    let base = open ? `${open.name} · Switchboard` : 'Switchboard';
    if (this.view !== 'channel' && this.viewTitle) base = `${this.viewTitle} · Switchboard`;
    document.title = total > 0 ? `(${total}) ${base}` : base;
  }

  onLiveDown(info) {
    this.setOffline(true);
    const ended = info.code === 1008 && /session/i.test(info.reason);
    // A refused upgrade looks like a plain network failure; ask the API whether the session
    // is still good, now and then.
    if (ended || (!info.everOpened && info.failures >= 2 && Date.now() - this.lastAuthCheck > 10000)) {
      this.lastAuthCheck = Date.now();
      api.me().catch((err) => {
        if (err.status === 401) this.expire();
      });
    }
  }

  setOffline(off) {
    const banner = $('offline-banner');
    if (!off) clearTimeout(this.offlineTimer);
    if (off === !banner.hidden) return;
    banner.hidden = !off;
    setText(banner, '');
    // Fill the live region after it is shown so that screen readers announce it.
    if (off) setTimeout(() => { if (!banner.hidden) setText(banner, 'Offline — reconnecting…'); }, 50);
  }

  setError(text, retry) {
    const box = $('app-error');
    clear(box);
    if (!text) return;
    box.appendChild(h('span', null, text));
    if (retry) {
      box.appendChild(h('button', {
        type: 'button',
        class: 'btn btn-small',
        onclick: () => {
          this.setError('');
          retry();
        },
      }, 'Retry'));
    }
  }

  // ---- Reading ----

  /** reading: the open channel's feed is on screen and at its bottom. */
  reading() {
    return this.view === 'channel' && this.feed.isReading();
  }

  scheduleMarkRead() {
    clearTimeout(this.readTimer);
    this.readTimer = setTimeout(() => this.markRead(), 150);
  }

  async markRead() {
    const id = this.feed.channelID;
    const ch = this.channels.get(id);
    if (!ch || !this.reading()) return;
    const n = this.feed.highest();
    if (n == null || (n <= ch.last_read && ch.unread === 0)) return;
    if ((this.readInFlight.get(id) ?? -1) >= n) return;
    this.readInFlight.set(id, n);
    try {
      const r = await api.markRead(id, n);
      if (!this.ended && r) this.onRead({ channel_id: id, last_read: r.last_read, unread: r.unread, as_of: r.as_of });
    } catch (err) {
      if (err.status !== 401) console.warn('switchboard: could not mark read', err);
    } finally {
      if (this.readInFlight.get(id) === n) this.readInFlight.delete(id);
    }
  }

  // ---- Actions ----

  async chipAction(action, issueID, chip) {
    let call;
    switch (action) {
      case 'take': call = api.take; break;
      case 'resolve': call = api.resolve; break;
      case 'close': call = api.close; break;
      case 'assign': {
        const u = await pickUser(this.ctx, `Assign issue #${issueID} to`, this.people);
        if (!u) return;
        call = (id) => api.assign(id, u.id);
        break;
      }
      default: return;
    }
    await this.issueAction(issueID, chip, call);
  }

  async issueAction(issueID, chip, call) {
    if (this.pendingIssues.has(issueID)) return;
    this.pendingIssues.add(issueID);
    setChipError(chip, '');
    this.feed.refreshIssue(issueID);
    try {
      const data = await call(issueID);
      if (this.ended) return;
      this.pendingIssues.delete(issueID);
      if (data && data.issue) {
        this.feed.applyIssue(data.issue);
        this.issueList?.apply(data.issue);
      }
      this.feed.refreshIssue(issueID);
    } catch (err) {
      if (this.ended) return;
      this.pendingIssues.delete(issueID);
      this.feed.refreshIssue(issueID);
      setChipError(chip, err.message);
    }
  }

  async send() {
    const id = this.feed.channelID;
    const input = $('composer-input');
    const body = input.value;
    if (this.sending || id == null || !body.trim()) return;
    this.sending = true;
    const button = $('composer-send');
    button.disabled = true;
    $('composer').setAttribute('aria-busy', 'true');
    setText($('composer-error'), '');
    try {
      const data = await api.post(id, body);
      if (this.ended) return;
      if (this.feed.channelID === id) {
        input.value = '';
        this.fitComposer();
      }
      else this.drafts.delete(id);
      if (data && data.message) this.onMessage(data.message);
      if (this.feed.channelID === id) this.feed.scrollToBottom(true);
    } catch (err) {
      if (!this.ended && this.feed.channelID === id) setText($('composer-error'), `Not sent: ${err.message}`);
    } finally {
      this.sending = false;
      button.disabled = false;
      $('composer').removeAttribute('aria-busy');
    }
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

boot();
