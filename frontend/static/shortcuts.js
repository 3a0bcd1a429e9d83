// Keyboard shortcuts for the common actions. They never fire while the user types in a
// field, holds a modifier, or has a dialog open.

import { h } from './dom.js';
import { openDialog, anyDialogOpen } from './dialog.js';

export const SHORTCUTS = [
  ['j', 'Next issue (or next message in a feed)'],
  ['k', 'Previous issue (or previous message)'],
  ['t', 'Take the issue'],
  ['r', 'Resolve the issue'],
  ['R or e', 'Write a reply'],
  ['n', 'Write an internal note'],
  ['?', 'Show this help'],
  ['Esc', 'Close a dialog or the menu'],
];

/** typing is true when key presses belong to a field. */
function typing(el) {
  if (!el) return false;
  if (el.isContentEditable) return true;
  const tag = el.tagName;
  if (tag === 'TEXTAREA' || tag === 'SELECT') return true;
  return tag === 'INPUT' && !['checkbox', 'radio', 'button', 'submit', 'reset'].includes(el.type);
}

/** mountShortcuts listens until signal aborts. handlers: {j, k, t, r, R, e, n} → fn(). */
export function mountShortcuts(handlers, signal) {
  document.addEventListener('keydown', (e) => {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || e.isComposing) return;
    if (typing(e.target) || anyDialogOpen()) return;
    if (e.key === '?') {
      e.preventDefault();
      showHelp();
      return;
    }
    const fn = handlers[e.key];
    if (!fn) return;
    e.preventDefault();
    fn();
  }, { signal });
}

export function showHelp() {
  const d = openDialog({ title: 'Keyboard shortcuts', className: 'help-dialog' });
  d.dialog.id = 'help-dialog';
  d.body.appendChild(h('dl', { class: 'keys' },
    SHORTCUTS.map(([k, what]) => [h('dt', null, k.split(' or ').map((x, i) => [i ? ' or ' : null, h('kbd', null, x)])), h('dd', null, what)])));
}
