// Notifications: the bell with its unread badge, the panel (paging, Mark all read), the
// pop-ups in the corner, browser notifications while the tab is hidden, and sounds.
// The server's count is the truth: every live frame carries "unread", and it pushes
// notification.read to every tab, so reading in one tab clears the others.

import { request } from './api.js';
import { h, clear, setText, timeElement } from './dom.js';
import {
  startSound, enableSound, disableSound, soundWanted, soundReady, repeatWanted, setRepeat,
  playShared, isLeader, onSoundChange,
} from './sound.js';

const PAGE = 20;
const MAX_TOASTS = 3;
const TOAST_MS = 8000;
const REPEAT_MS = 30000;

// Live objects carry their payload under "data" (docs/api.md, "Event objects").
const payload = (obj) => (obj && typeof obj.data === 'object' && obj.data) || obj || {};

/** hrefOf turns a notification into a route of the app ("#/issues/12"). */
export function hrefOf(n) {
  const link = String(n.link || '');
  const i = link.indexOf('#/');
  if (i >= 0) return link.slice(i);
  if (n.issue_id) return `#/issues/${n.issue_id}`;
  if (n.channel_id) return `#/channels/${n.channel_id}`;
  return '';
}

/**
 * mountNotifications draws the bell into bellSlot and pop-ups into toasts, follows the
 * live notification frames, and returns a function that tears it all down.
 */
export function mountNotifications(ctx, bellSlot, toasts) {
  const ac = new AbortController();
  const signal = ac.signal;
  const items = new Map(); // id → notification, newest first by id
  const ringing = new Map(); // id → sound, unread notifications that came with one
  let unread = 0;
  let hasMore = false;
  let loading = null;
  let open = false;
  const offs = [];

  // ---- The bell and the panel ----
  const badge = h('span', { id: 'bell-badge', class: 'badge bell-badge', hidden: true });
  const bell = h('button', {
    type: 'button', id: 'bell', class: 'icon-btn bell', 'aria-haspopup': 'dialog',
    'aria-expanded': 'false', 'aria-controls': 'notify-panel', 'aria-label': 'Notifications',
  }, h('span', { class: 'bell-icon', 'aria-hidden': 'true' }), badge);
  const readAll = h('button', { type: 'button', id: 'notify-read-all', class: 'btn btn-small', text: 'Mark all read' });
  const list = h('ul', { id: 'notify-list', class: 'notify-list', 'aria-label': 'Notifications' });
  const more = h('button', { type: 'button', id: 'notify-more', class: 'btn btn-quiet btn-small', text: 'Load older', hidden: true });
  const error = h('p', { id: 'notify-error', class: 'form-error', role: 'alert' });
  const soundBtn = h('button', { type: 'button', id: 'notify-sound', class: 'btn btn-small' });
  const repeatBox = h('input', { type: 'checkbox', id: 'notify-repeat' });
  const repeat = h('label', { class: 'pg-check notify-repeat' }, repeatBox, 'Repeat until read');
  const browserBtn = h('button', { type: 'button', id: 'notify-browser', class: 'btn btn-small', text: 'Allow browser pop-ups', hidden: true });
  const browserNote = h('span', { class: 'notify-note' });
  const title = h('h2', { id: 'notify-title', tabindex: '-1', text: 'Notifications' });
  const panel = h('div', { id: 'notify-panel', class: 'notify-panel', role: 'dialog', 'aria-labelledby': 'notify-title', hidden: true },
    h('div', { class: 'notify-head' }, title, readAll),
    h('div', { class: 'notify-tools' }, soundBtn, repeat, browserBtn, browserNote),
    error, list,
    h('div', { class: 'notify-foot' }, more, h('a', { href: '#/preferences', class: 'notify-prefs', text: 'Notification preferences' })));
  const wrap = h('div', { class: 'notify' }, bell, panel);
  clear(bellSlot).append(wrap);

  function setUnread(n) {
    unread = Math.max(0, Number(n) || 0);
    badge.hidden = unread === 0;
    setText(badge, unread > 99 ? '99+' : String(unread));
    bell.setAttribute('aria-label', unread ? `Notifications, ${unread} unread` : 'Notifications');
    readAll.disabled = unread === 0;
  }

  function row(n) {
    const unreadNow = !n.read_at;
    const b = h('button', { type: 'button', class: 'notify-item', dataset: { notificationId: n.id, unread: String(unreadNow) } },
      h('span', { class: 'notify-item-title', text: n.title || 'Notification' }),
      n.body ? h('span', { class: 'notify-item-body', text: n.body }) : null,
      timeElement(n.created_at));
    b.addEventListener('click', () => openItem(n));
    return h('li', null, b);
  }

  function renderList() {
    // Keep the keyboard where it was when a live notification redraws the list.
    const focused = list.contains(document.activeElement) ? document.activeElement.dataset.notificationId : null;
    const all = [...items.values()].sort((a, b) => b.id - a.id);
    list.replaceChildren(...all.map(row));
    if (focused) list.querySelector(`[data-notification-id="${CSS.escape(focused)}"]`)?.focus();
    if (all.length === 0) list.append(h('li', { class: 'notify-empty', text: loading ? 'Loading…' : 'No notifications yet.' }));
    more.hidden = !hasMore;
  }

  function renderTools() {
    const wanted = soundWanted();
    setText(soundBtn, !wanted ? 'Enable sound' : soundReady() ? 'Sound on' : 'Sound on (click anywhere to start)');
    soundBtn.setAttribute('aria-pressed', String(wanted));
    repeat.hidden = !wanted;
    repeatBox.checked = repeatWanted();
    const N = window.Notification;
    browserBtn.hidden = !N || N.permission !== 'default';
    setText(browserNote, !N ? '' : N.permission === 'granted' ? 'Browser pop-ups on' : N.permission === 'denied' ? 'Browser pop-ups blocked in the browser’s settings' : '');
  }

  async function load(reset) {
    if (loading) return loading;
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (!reset && items.size) q.set('before', String(Math.min(...items.keys())));
    more.disabled = true;
    loading = request('GET', `/api/notifications?${q}`, undefined, { signal })
      .then((data) => {
        const got = data.notifications || [];
        // A fresh first page drops what is older than it (paging starts again) but keeps
        // newer ones: a live notification may have arrived while the page was on its way.
        if (reset) {
          const floor = got.length ? Math.min(...got.map((n) => n.id)) : -Infinity;
          for (const id of [...items.keys()]) if (id < floor) items.delete(id);
        }
        for (const n of got) items.set(n.id, n);
        hasMore = !!data.has_more;
        if (data.unread != null) setUnread(data.unread);
        setText(error, '');
      })
      .catch((err) => {
        if (err.name !== 'AbortError') setText(error, `Could not load notifications: ${err.message}`);
      })
      .finally(() => {
        loading = null;
        more.disabled = false;
        if (!signal.aborted) renderList();
      });
    return loading;
  }

  function setOpen(v, focusBell) {
    open = v;
    panel.hidden = !v;
    bell.setAttribute('aria-expanded', String(v));
    if (v) {
      renderTools();
      renderList();
      (list.querySelector('.notify-item') || title).focus();
    } else if (focusBell) {
      bell.focus();
    }
  }

  bell.addEventListener('click', () => setOpen(!open, false), { signal });
  // Escape on the document: focus may have left the panel (a button just disabled).
  document.addEventListener('keydown', (e) => {
    if (e.key !== 'Escape' || !open) return;
    e.stopPropagation();
    setOpen(false, true);
  }, { signal, capture: true });
  panel.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      const all = [...list.querySelectorAll('.notify-item')];
      const i = all.indexOf(document.activeElement);
      if (i < 0) return;
      e.preventDefault();
      all[Math.max(0, Math.min(all.length - 1, i + (e.key === 'ArrowDown' ? 1 : -1)))].focus();
    }
  }, { signal });
  document.addEventListener('pointerdown', (e) => {
    if (open && !wrap.contains(e.target)) setOpen(false, false);
  }, { signal });
  // After Load older the keyboard goes on to the first older one (the button may be gone).
  more.addEventListener('click', async () => {
    const before = list.querySelectorAll('.notify-item').length;
    await load(false);
    list.querySelectorAll('.notify-item')[before]?.focus();
  }, { signal });
  readAll.addEventListener('click', async () => {
    readAll.disabled = true;
    try {
      const data = await request('POST', '/api/notifications/read-all', {});
      markRead({ all: true, up_to: data?.up_to, unread: data?.unread ?? 0 });
    } catch (err) {
      setText(error, `Could not mark them read: ${err.message}`);
      readAll.disabled = unread === 0;
    }
  }, { signal });
  soundBtn.addEventListener('click', () => {
    if (soundWanted()) disableSound();
    else enableSound();
  }, { signal });
  repeatBox.addEventListener('change', () => setRepeat(repeatBox.checked), { signal });
  browserBtn.addEventListener('click', async () => {
    try {
      await window.Notification.requestPermission();
    } finally {
      renderTools();
    }
  }, { signal });

  async function openItem(n) {
    setOpen(false, false);
    dismissToast(n.id);
    if (!n.read_at) {
      n.read_at = new Date().toISOString();
      renderList();
      request('POST', `/api/notifications/${encodeURIComponent(n.id)}/read`, {})
        .then((data) => { if (data?.unread != null) setUnread(data.unread); })
        .catch((err) => console.warn('switchboard: mark notification read', err));
    }
    const href = hrefOf(n);
    if (href) ctx.navigate(href);
  }

  // ---- Pop-ups ----
  function dismissToast(id) {
    toasts.querySelector(`[data-notification-id="${CSS.escape(String(id))}"]`)?.remove();
  }

  function toast(n) {
    dismissToast(n.id);
    const close = h('button', { type: 'button', class: 'toast-close', 'aria-label': 'Dismiss', text: '×' });
    const body = h('button', { type: 'button', class: 'toast-open' },
      h('strong', { class: 'toast-title', text: n.title || 'Notification' }),
      n.body ? h('span', { class: 'toast-body', text: n.body }) : null);
    const el = h('div', { class: 'toast', dataset: { notificationId: n.id } }, body, close);
    let timer = 0;
    const arm = () => { clearTimeout(timer); timer = setTimeout(() => el.remove(), TOAST_MS); };
    el.addEventListener('pointerenter', () => clearTimeout(timer));
    el.addEventListener('pointerleave', arm);
    el.addEventListener('focusin', () => clearTimeout(timer));
    el.addEventListener('focusout', arm);
    close.addEventListener('click', () => el.remove());
    body.addEventListener('click', () => openItem(n));
    toasts.append(el);
    while (toasts.children.length > MAX_TOASTS) toasts.firstElementChild.remove();
    arm();
  }

  function browserPopup(n) {
    const N = window.Notification;
    if (!N || N.permission !== 'granted' || document.visibilityState !== 'hidden') return;
    try {
      // One tag per notification: several hidden tabs show one pop-up between them.
      const pop = new N(n.title || 'Switchboard', { body: n.body || '', tag: `switchboard-${n.id}` });
      pop.addEventListener('click', () => {
        window.focus();
        openItem(n);
        pop.close();
      });
    } catch (err) {
      console.warn('switchboard: browser notification', err);
    }
  }

  // ---- Live frames ----
  function markRead(d) {
    const now = d.read_at || new Date().toISOString();
    // "all" covers notifications up to up_to: a newer one stays unread.
    const upTo = d.up_to ?? Infinity;
    const ids = d.all ? [...items.keys()].filter((id) => id <= upTo) : (d.ids || []);
    for (const id of ids) {
      const n = items.get(id);
      if (n && !n.read_at) n.read_at = now;
      ringing.delete(id);
      dismissToast(id);
    }
    if (d.all) {
      for (const id of [...ringing.keys()]) if (id <= upTo) ringing.delete(id);
      for (const t of [...toasts.children]) if (Number(t.dataset.notificationId) <= upTo) t.remove();
    }
    if (d.unread != null) setUnread(d.unread);
    if (open) renderList();
  }

  const on = (type, fn) => offs.push(ctx.onEvent(type, (obj) => fn(payload(obj))));
  on('notification.created', (d) => {
    const n = d.notification;
    if (!n) return;
    const fresh = !items.has(n.id);
    items.set(n.id, n);
    setUnread(d.unread != null ? d.unread : unread + (fresh && !n.read_at ? 1 : 0));
    if (open) renderList();
    if (!fresh || n.read_at) return;
    toast(n);
    browserPopup(n);
    const sound = d.sound !== undefined ? d.sound : n.sound;
    if (sound) {
      ringing.set(n.id, sound);
      playShared(sound, `n${n.id}`); // keyed: one play per notification across the tabs
    }
  });
  on('notification.read', markRead);
  // Quiet hours ended: what they held arrives as one sound and a fresh list.
  on('notification.released', (d) => {
    if (d.unread != null) setUnread(d.unread);
    if (d.sound) {
      for (const id of d.ids || []) ringing.set(id, d.sound);
      playShared(d.sound, d.ids?.length ? `r${Math.max(...d.ids)}` : undefined);
    }
    load(true);
  });
  on('live.connected', () => load(true));

  // Repeat until read: the leading tab rings again for the newest unread sounded one.
  const repeatTimer = setInterval(() => {
    if (!repeatWanted() || !isLeader() || ringing.size === 0) return;
    playShared([...ringing.entries()].sort((a, b) => b[0] - a[0])[0][1]);
  }, REPEAT_MS);

  const stopSound = startSound();
  const offSound = onSoundChange(() => { if (open) renderTools(); });
  setUnread(0);
  load(true);

  return () => {
    ac.abort();
    clearInterval(repeatTimer);
    for (const off of offs) off?.();
    offSound();
    stopSound();
    toasts.replaceChildren();
    clear(bellSlot);
  };
}
