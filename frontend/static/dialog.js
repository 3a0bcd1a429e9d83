// Modal dialogs on the native <dialog>: showModal makes the rest of the page inert (focus
// stays inside), Escape closes, and focus returns to where it was.

import { h } from './dom.js';

let seq = 0;

/**
 * openDialog shows a modal. opts: {title, className, onClose}. It returns {dialog, body,
 * close}; fill body, and put `autofocus` on the element that should take the focus.
 */
export function openDialog(opts) {
  const id = `dlg-${++seq}`;
  const body = h('div', { class: 'dialog-body' });
  const closeBtn = h('button', { type: 'button', class: 'icon-btn dialog-x', 'aria-label': 'Close' }, '×');
  const dialog = h('dialog', { class: `dialog ${opts.className || ''}`, 'aria-labelledby': id },
    h('header', { class: 'dialog-head' }, h('h2', { id }, opts.title), closeBtn),
    body);
  const before = document.activeElement;
  const close = () => { if (dialog.open) dialog.close(); };
  closeBtn.addEventListener('click', close);
  // A click on the backdrop (outside the box) closes, as a lightbox does.
  dialog.addEventListener('click', (e) => { if (e.target === dialog) close(); });
  dialog.addEventListener('close', () => {
    dialog.remove();
    opts.onClose?.();
    if (before && before.isConnected && typeof before.focus === 'function') before.focus({ preventScroll: true });
  });
  document.body.appendChild(dialog);
  queueMicrotask(() => {
    dialog.showModal();
    const first = body.querySelector('[autofocus]');
    if (first) first.focus();
  });
  return { dialog, body, close };
}

/** anyDialogOpen is true while a modal is showing (keyboard shortcuts wait). */
export function anyDialogOpen() {
  return document.querySelector('dialog[open]') !== null;
}
