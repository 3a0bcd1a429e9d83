// Coworkers: presence (GET /api/presence, then live "presence" objects), the People list
// in the sidebar (a click opens the direct message), the user picker (Assign It, new
// direct message) and the new team channel dialog.

import { h, clear, setText } from './dom.js';
import { openDialog } from './dialog.js';

const STATES = { online: 'online', idle: 'idle' };

export class People {
  /** ctx: the session context; root: the sidebar element that lists people. */
  constructor(ctx, root) {
    this.ctx = ctx;
    this.root = root;
    this.state = new Map(); // user id → online | idle (absent: offline)
    ctx.onEvent('presence', (o) => {
      const id = Number(o.user_id ?? o.data?.user_id);
      const st = o.state ?? o.data?.state;
      if (STATES[st]) this.state.set(id, st);
      else this.state.delete(id);
      this.paint();
    });
    // Presence is not replayed on resume: read it again after every hello.
    ctx.onEvent('live.connected', () => this.load());
  }

  async load() {
    try {
      const data = await this.ctx.api.presence();
      this.state = new Map(Object.entries(data.presence || {}).map(([id, st]) => [Number(id), st]));
      this.paint();
    } catch (err) {
      if (err.status !== 401) console.warn('switchboard: could not load presence', err);
    }
  }

  of(id) {
    return this.state.get(Number(id)) || 'offline';
  }

  /** dot is a presence dot for user id, kept current by paint. */
  dot(id) {
    const st = this.of(id);
    return h('span', { class: 'dot', dataset: { presenceUser: String(id), presence: st }, title: st, 'aria-label': st, role: 'img' });
  }

  /** paint brings every presence dot on the page up to date, and the People list. */
  paint() {
    for (const el of document.querySelectorAll('[data-presence-user]')) {
      const st = this.of(el.dataset.presenceUser);
      el.dataset.presence = st;
      el.title = st;
      el.setAttribute('aria-label', st);
    }
  }

  /** render lists every other enabled user; a click opens (or starts) the direct message. */
  render() {
    const others = this.ctx.users().filter((u) => u.id !== this.ctx.me.id && !u.disabled);
    clear(this.root);
    if (others.length === 0) return;
    this.root.appendChild(h('section', { class: 'channel-group' },
      h('h2', { id: 'group-people', class: 'group-title' }, 'People'),
      h('ul', { 'aria-labelledby': 'group-people' }, others.map((u) => h('li', null,
        h('button', {
          type: 'button', class: 'channel-link person', dataset: { userId: String(u.id) },
          title: `Message ${u.name}`, onclick: () => this.openDirect(u.id),
        }, this.dot(u.id), h('span', { class: 'channel-name' }, u.name)))))));
  }

  /** openDirect finds or creates the direct channel with user id and opens it. */
  async openDirect(userID) {
    try {
      const data = await this.ctx.api.direct(userID);
      this.ctx.addChannel?.(data.channel);
      this.ctx.navigate(`#/channels/${data.channel.id}`);
    } catch (err) {
      this.ctx.toast?.(`Could not open the conversation: ${err.message}`);
    }
  }
}

/**
 * pickUser shows a searchable list of enabled users and resolves with the chosen one (or
 * null). people may be null (no presence dots).
 */
export function pickUser(ctx, title, people) {
  return new Promise((resolve) => {
    let chosen = null;
    const d = openDialog({ title, className: 'picker', onClose: () => resolve(chosen) });
    const search = h('input', { type: 'search', class: 'input', 'aria-label': 'Search people', placeholder: 'Search people', autofocus: true });
    const list = h('ul', { class: 'pick-list' });
    const fill = () => {
      const q = search.value.trim().toLowerCase();
      const users = ctx.users().filter((u) => !u.disabled &&
        (!q || u.name.toLowerCase().includes(q) || u.handle.includes(q)));
      clear(list);
      for (const u of users) {
        list.appendChild(h('li', null, h('button', {
          type: 'button', class: 'pick', dataset: { userId: String(u.id) },
          onclick: () => { chosen = u; d.close(); },
        }, people ? people.dot(u.id) : null, h('span', null, u.id === ctx.me.id ? `${u.name} (you)` : u.name),
        h('span', { class: 'muted' }, '@' + u.handle))));
      }
      if (!users.length) list.appendChild(h('li', { class: 'muted' }, 'Nobody matches.'));
    };
    search.addEventListener('input', fill);
    search.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') {
        e.preventDefault();
        list.querySelector('button')?.click();
      }
    });
    fill();
    d.body.append(search, list);
  });
}

/**
 * channelMembers shows a team channel's members: anyone may add people or leave; admins
 * may also remove others.
 */
export function channelMembers(ctx, channel, people) {
  const d = openDialog({ title: `Members of # ${channel.name}`, className: 'members-dialog' });
  d.dialog.id = 'members-dialog';
  const list = h('ul', { class: 'pick-list' });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const admin = ctx.me.role === 'admin';
  const run = async (fn) => {
    setText(error, '');
    try {
      await fn();
    } catch (err) {
      setText(error, err.message);
    }
    await fill();
  };
  const fill = async () => {
    let data;
    try {
      data = await ctx.api.members(channel.id);
    } catch (err) {
      if (err.status === 404) d.close(); // no longer ours
      else setText(error, err.message);
      return;
    }
    clear(list);
    for (const id of data.member_ids || []) {
      const u = ctx.user(id);
      list.appendChild(h('li', { class: 'pick', dataset: { userId: String(id) } },
        people.dot(id), h('span', null, u ? u.name : `user ${id}`),
        admin && id !== ctx.me.id ? h('button', {
          type: 'button', class: 'btn btn-small btn-quiet', 'aria-label': `Remove ${u ? u.name : id}`,
          onclick: () => run(() => ctx.api.removeMember(channel.id, id)),
        }, 'Remove') : null));
    }
  };
  const add = h('button', { type: 'button', class: 'btn btn-small', id: 'add-member', autofocus: true, onclick: async () => {
    const u = await pickUser(ctx, `Add to # ${channel.name}`, people);
    if (u) await run(() => ctx.api.addMember(channel.id, u.id));
  } }, 'Add people');
  const leave = h('button', { type: 'button', class: 'btn btn-small', id: 'leave-channel', onclick: async () => {
    setText(error, '');
    try {
      await ctx.api.removeMember(channel.id, ctx.me.id);
      d.close();
    } catch (err) {
      setText(error, err.message);
    }
  } }, 'Leave channel');
  d.body.append(list, error, h('div', { class: 'side-actions' }, add, leave));
  fill();
}

/** newChannel asks for a name and members and creates a team channel. */
export function newChannel(ctx) {
  const d = openDialog({ title: 'New team channel' });
  const name = h('input', { id: 'new-channel-name', class: 'input', required: true, maxlength: '100', autofocus: true });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const boxes = ctx.users().filter((u) => !u.disabled && u.id !== ctx.me.id).map((u) =>
    h('label', { class: 'check' }, h('input', { type: 'checkbox', value: String(u.id) }), u.name));
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create channel');
  const form = h('form', { class: 'stack' },
    h('div', { class: 'field' }, h('label', { for: 'new-channel-name' }, 'Name'), name),
    h('fieldset', { class: 'members' }, h('legend', null, 'Members (you are one)'), boxes),
    error, submit);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const ids = boxes.map((l) => l.firstChild).filter((c) => c.checked).map((c) => Number(c.value));
    submit.disabled = true;
    setText(error, '');
    try {
      const data = await ctx.api.createChannel(name.value.trim(), [ctx.me.id, ...ids]);
      ctx.addChannel?.(data.channel);
      d.close();
      ctx.navigate(`#/channels/${data.channel.id}`);
    } catch (err) {
      setText(error, err.message);
      submit.disabled = false;
    }
  });
  d.body.appendChild(form);
}
