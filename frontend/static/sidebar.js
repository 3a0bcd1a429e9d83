// The channel list: channels grouped by kind, each a link to #/channels/ID with an
// unread badge.

import { h, clear, setText } from './dom.js';

const GROUPS = [
  { id: 'customers', title: 'SMS & email', kinds: ['sms', 'email'] },
  { id: 'team', title: 'Team channels', kinds: ['team'], add: 'onNewChannel', addLabel: 'New team channel' },
  { id: 'direct', title: 'Direct messages', kinds: ['direct'], add: 'onNewDirect', addLabel: 'New direct message' },
];

const ICONS = { sms: '✆', email: '✉', team: '#', direct: '@' };
const KIND_NAMES = { sms: 'SMS', email: 'Email', team: 'Team channel', direct: 'Direct message' };

export function kindName(kind) {
  return KIND_NAMES[kind] || kind;
}

export function channelHref(id) {
  return `#/channels/${id}`;
}

/**
 * renderChannelList fills root with the grouped channels (an array, in API order).
 * opts: {dot(userID) → presence element, onNewChannel(), onNewDirect()}.
 */
export function renderChannelList(root, channels, currentID, opts = {}) {
  clear(root);
  for (const g of GROUPS) {
    const list = channels.filter((c) => g.kinds.includes(c.kind));
    const add = g.add && opts[g.add];
    if (list.length === 0 && !add) continue;
    const headingID = `group-${g.id}`;
    root.appendChild(h('section', { class: 'channel-group' },
      h('div', { class: 'group-head' },
        h('h2', { id: headingID, class: 'group-title' }, g.title),
        add ? h('button', { type: 'button', class: 'group-add', 'aria-label': g.addLabel, title: g.addLabel, dataset: { add: g.id }, onclick: add }, '+') : null),
      h('ul', { 'aria-labelledby': headingID }, list.map((c) => h('li', null, renderChannel(c, currentID, opts)))),
    ));
  }
  const known = new Set(GROUPS.flatMap((g) => g.kinds));
  if (channels.length === 0 || channels.every((c) => !known.has(c.kind))) {
    root.appendChild(h('p', { class: 'empty-note' }, 'You are not in any channel yet.'));
  }
}

function renderChannel(c, currentID, opts) {
  const dot = c.kind === 'direct' && c.peer_id != null && opts.dot ? opts.dot(c.peer_id) : null;
  const a = h('a', {
    class: 'channel-link',
    href: channelHref(c.id),
    dataset: { channelId: String(c.id), kind: c.kind },
    'aria-current': c.id === currentID ? 'page' : null,
  },
  dot || h('span', { class: 'channel-icon', 'aria-hidden': 'true' }, ICONS[c.kind] || '•'),
  h('span', { class: 'channel-name' }, c.name),
  h('span', { class: 'badge', 'aria-hidden': 'true', hidden: true }),
  h('span', { class: 'visually-hidden unread-sr' }),
  );
  updateBadge(a, c.unread);
  return a;
}

/** updateBadge shows n on a channel link (hidden at 0). */
export function updateBadge(link, n) {
  if (!link) return;
  const badge = link.querySelector('.badge');
  const sr = link.querySelector('.unread-sr');
  const count = Math.max(0, Number(n) || 0);
  badge.hidden = count === 0;
  setText(badge, count > 99 ? '99+' : String(count));
  setText(sr, count ? `, ${count} unread` : '');
  link.classList.toggle('has-unread', count > 0);
}

/** markCurrent moves aria-current to the link of id. */
export function markCurrent(root, id) {
  for (const a of root.querySelectorAll('[data-channel-id]')) {
    if (Number(a.dataset.channelId) === id) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}
