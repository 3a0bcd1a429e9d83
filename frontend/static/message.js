// One message of the feed, and the issue chip of customer messages. All text goes in as
// text nodes.

import { h, setText, timeElement, initials, hue } from './dom.js';

/** customerLabel names a customer: name, else phone, else email. */
export function customerLabel(c) {
  if (!c) return 'Customer';
  return c.name || c.phone || c.email || 'Customer';
}

/**
 * issueView says how an issue looks: state (unassigned | assigned | resolved) and label.
 * users resolves assignee ids when an event lacks the name.
 */
export function issueView(issue, users) {
  if (issue.status === 'resolved' || issue.status === 'closed') {
    const by = issue.resolved_by_name;
    const word = issue.status === 'closed' ? 'Closed' : 'Resolved';
    return { state: 'resolved', label: by ? `Resolved by ${by}` : word };
  }
  if (issue.assignee_id != null) {
    const name = issue.assignee_name || users?.get(issue.assignee_id)?.name || 'someone';
    return { state: 'assigned', label: `Assigned to ${name}` };
  }
  return { state: 'unassigned', label: 'Unassigned' };
}

/**
 * allowed says which actions the rules of DESIGN.md ("Issue rules") let user me take on
 * issue, so that the UI offers only those. The server checks again and may still refuse
 * (the issue changed meanwhile): its refusal is shown.
 */
export function allowed(issue, me) {
  const admin = me.role === 'admin';
  const mine = issue.assignee_id != null && issue.assignee_id === me.id;
  const free = issue.assignee_id == null;
  const active = issue.status === 'open' || issue.status === 'in_progress';
  const done = issue.status === 'resolved' || issue.status === 'closed';
  return {
    take: !mine && (free || admin),
    assign: free || mine || admin,
    resolve: active && (free || mine || admin),
    close: issue.status !== 'closed' && (free || mine || admin),
    reopen: done && (mine || admin),
    priority: mine || admin,
    reply: free || mine || admin,
  };
}

/**
 * renderMessage builds the element of one message.
 * ctx: { meID, users, onTake(issueID, chip), onResolve(issueID, chip), pending(issueID) }
 */
export function renderMessage(m, ctx) {
  const customer = m.customer;
  const author = m.author;
  let name, sub, key, kind;
  if (customer) {
    kind = 'customer';
    name = customerLabel(customer);
    // Under the name, the first contact detail that is not already the name.
    sub = [customer.phone, customer.email].find((v) => v && v !== name) || '';
    key = 'c' + customer.id;
  } else if (author) {
    kind = m.author_id === ctx.meID ? 'mine' : 'agent';
    name = author.name || author.handle || 'Someone';
    sub = author.handle ? '@' + author.handle : '';
    key = 'u' + author.id;
  } else {
    kind = 'system';
    name = 'Switchboard';
    sub = '';
    key = 'system';
  }
  let mark = initials(name);
  if (kind === 'system') mark = '•';
  else if (customer && !/\p{L}/u.test(customer.name || '')) mark = customer.phone ? '✆' : '✉'; // no real name
  else if (!mark) mark = '?';
  const avatar = h('span', { class: `avatar av-${hue(key)}`, 'aria-hidden': 'true' }, mark);
  const head = h('div', { class: 'msg-head' },
    customer && ctx.onCustomer
      ? h('button', { type: 'button', class: 'msg-author as-link', title: 'View Customer', onclick: () => ctx.onCustomer(customer.id) }, name)
      : h('span', { class: 'msg-author' }, name),
    sub ? h('span', { class: 'msg-sub' }, sub) : null,
    timeElement(m.created_at),
  );
  const body = h('div', { class: 'msg-body' }, m.body ?? '');
  const content = h('div', { class: 'msg-content' }, head, body);
  if (m.issue) content.appendChild(renderIssueChip(m.issue, ctx));
  return h('article', {
    class: `msg msg-${kind}`,
    dataset: { messageId: String(m.id), number: String(m.number) },
    'aria-label': `${name}, message ${m.number}`,
  }, avatar, content);
}

const CHIP_ACTIONS = [['take', 'Take It'], ['assign', 'Assign It'], ['resolve', 'Resolve'], ['close', 'Mark as Closed']];

/** renderIssueChip builds a chip; updateIssueChip fills it in. */
export function renderIssueChip(issue, ctx) {
  const label = h('a', { class: 'issue-label', href: `#/issues/${issue.id}`, title: 'Open the issue' });
  const buttons = CHIP_ACTIONS.map(([action, text]) =>
    h('button', { type: 'button', class: 'btn btn-small chip-btn', dataset: { action } }, text));
  const error = h('span', { class: 'issue-error', role: 'alert' });
  const chip = h('div', { class: 'issue-chip', role: 'group' },
    label,
    h('span', { class: 'issue-actions' }, buttons),
    error,
  );
  chip.addEventListener('click', (e) => {
    const b = e.target.closest('button[data-action]');
    if (b && !b.disabled) ctx.onAction(b.dataset.action, Number(chip.dataset.issueId), chip, b);
  });
  updateIssueChip(chip, issue, ctx);
  return chip;
}

export function updateIssueChip(chip, issue, ctx) {
  const view = issueView(issue, ctx.users);
  chip.dataset.issueId = String(issue.id);
  chip.dataset.status = issue.status;
  chip.dataset.state = view.state;
  chip.setAttribute('aria-label', `Issue ${issue.id}: ${view.label}`);
  const label = chip.querySelector('.issue-label');
  label.href = `#/issues/${issue.id}`;
  const parts = [`#${issue.id}`, view.label];
  if (issue.status === 'in_progress') parts.push('In progress');
  if (issue.priority && /^(high|urgent)$/i.test(issue.priority)) parts.push(issue.priority[0].toUpperCase() + issue.priority.slice(1) + ' priority');
  setText(label, parts.join(' · '));

  const may = allowed(issue, ctx.me);
  const active = issue.status === 'open' || issue.status === 'in_progress';
  const show = {
    take: active && may.take,
    assign: active && may.assign,
    resolve: may.resolve,
    close: issue.status === 'resolved' && may.close, // "Mark as Closed" once resolved
  };
  const pending = ctx.pending(issue.id);
  const buttons = [...chip.querySelectorAll('button[data-action]')];
  const hadFocus = chip.contains(document.activeElement) ? document.activeElement : null;
  for (const b of buttons) {
    b.hidden = !show[b.dataset.action];
    b.disabled = pending;
  }
  chip.setAttribute('aria-busy', pending ? 'true' : 'false');
  if (hadFocus && hadFocus.hidden) {
    // Keep keyboard users in place when the button they used goes away.
    (buttons.find((b) => !b.hidden) || label).focus();
  }
}

/** setChipError shows (or clears) a refusal next to the buttons. */
export function setChipError(chip, text) {
  setText(chip.querySelector('.issue-error'), text || '');
}
