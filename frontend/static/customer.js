// The customer view, a lightbox: contact details, follow / unfollow, past issues.

import { h, clear, setText, timeElement } from './dom.js';
import { openDialog } from './dialog.js';
import { customerLabel, issueView } from './message.js';
import { statusName } from './issues-list.js';

/** showCustomer opens the lightbox of customer id. */
export function showCustomer(ctx, id) {
  const d = openDialog({ title: 'Customer', className: 'customer-dialog' });
  d.dialog.id = 'customer-dialog';
  const status = h('p', { class: 'muted', role: 'status' }, 'Loading…');
  d.body.appendChild(status);
  let following = null; // from GET /api/customers/{id}, then live customer.followed frames
  let heardLive = false; // a live frame is newer than the answer still on its way
  const followBtn = h('button', { type: 'button', id: 'follow-customer', class: 'btn', 'aria-pressed': 'false' });
  const followErr = h('span', { class: 'form-error', role: 'alert' });
  const paintFollow = () => {
    setText(followBtn, following ? 'Following' : 'Follow');
    followBtn.setAttribute('aria-pressed', String(!!following));
    followBtn.title = following ? 'Stop following this customer' : 'Be notified when this customer writes';
  };
  followBtn.addEventListener('click', async () => {
    followBtn.disabled = true;
    setText(followErr, '');
    try {
      const r = await ctx.api.follow(id, !following);
      following = !!r.following;
      paintFollow();
    } catch (err) {
      setText(followErr, err.message);
    } finally {
      followBtn.disabled = false;
    }
  });
  const off = ctx.onEvent('customer.followed', (o) => {
    if (Number(o.data?.customer_id) !== Number(id)) return;
    following = !!o.data.following;
    heardLive = true;
    paintFollow();
  });
  d.dialog.addEventListener('close', off);

  ctx.api.customer(id).then((data) => {
    const c = data.customer;
    if (!heardLive) following = data.following === true;
    paintFollow();
    clear(d.body);
    const row = (label, value) => value ? [h('dt', null, label), h('dd', null, value)] : [];
    const issues = data.issues || [];
    d.body.append(
      h('div', { class: 'cust-head' },
        h('p', { class: 'cust-name', id: 'customer-name' }, customerLabel(c)),
        followBtn, followErr),
      h('dl', { class: 'facts' },
        row('Phone', c.phone), row('Email', c.email), row('Customer since', timeElement(c.created_at))),
      h('h3', { class: 'sub-title' }, `Issues (${issues.length})`),
      issues.length
        ? h('ul', { class: 'past-issues' }, issues.map((i) => h('li', null,
          h('a', { href: `#/issues/${i.id}`, dataset: { issueId: String(i.id), state: issueView(i, null).state }, onclick: () => d.close() },
            h('span', { class: 'state-dot', 'aria-hidden': 'true' }),
            h('span', { class: 'pi-subject' }, `#${i.id} ${i.subject || '(no subject)'}`),
            h('span', { class: 'muted' }, statusName(i.status)), timeElement(i.created_at)))))
        : h('p', { class: 'muted' }, 'No issues in your channels.'));
  }).catch((err) => {
    setText(status, `Could not load the customer: ${err.message}`);
    status.setAttribute('role', 'alert');
  });
  return d;
}
