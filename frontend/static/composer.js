// @-autocompletion of user and team handles in a textarea: a listbox under it, driven
// from the keyboard (↑ ↓ to move, Enter or Tab to insert, Escape to close) or the mouse.

import { h, clear } from './dom.js';

// "@" at the start or after a character that cannot end a handle or an address, then
// what has been typed of the handle so far, up to the caret.
const TOKEN = /(^|[^a-z0-9._@-])@([a-z0-9._-]{0,32})$/i;

/**
 * attachMentions wires input and the listbox list. candidates() returns
 * [{handle, name, kind:'user'|'team'}]. It returns a function that reports whether the
 * list is open (the caller's Enter key must leave it alone then).
 */
export function attachMentions(input, list, candidates, signal) {
  let items = [];
  let active = -1;
  let start = -1; // index of the "@" being completed

  const close = () => {
    items = [];
    active = -1;
    list.hidden = true;
    input.setAttribute('aria-expanded', 'false');
    input.removeAttribute('aria-activedescendant');
  };
  const paint = () => {
    [...list.children].forEach((li, i) => li.setAttribute('aria-selected', String(i === active)));
    if (active >= 0) input.setAttribute('aria-activedescendant', list.children[active].id);
  };
  const insert = (item) => {
    const caret = input.selectionStart;
    const text = `@${item.handle} `;
    input.setRangeText(text, start, caret, 'end');
    close();
    input.dispatchEvent(new Event('input', { bubbles: true }));
    input.focus();
  };
  const update = () => {
    const caret = input.selectionStart;
    if (caret !== input.selectionEnd) return close();
    const m = TOKEN.exec(input.value.slice(0, caret));
    if (!m) return close();
    const q = m[2].toLowerCase();
    start = caret - m[2].length - 1;
    items = candidates()
      .filter((c) => c.handle.startsWith(q) || c.name.toLowerCase().split(/\s+/).some((w) => w.startsWith(q)))
      .sort((a, b) => Number(b.handle.startsWith(q)) - Number(a.handle.startsWith(q)) || a.handle.localeCompare(b.handle))
      .slice(0, 8);
    if (!items.length) return close();
    active = 0;
    clear(list);
    items.forEach((c, i) => list.appendChild(h('li', {
      id: `${list.id}-${i}`, role: 'option', class: 'ac-item', dataset: { handle: c.handle },
      onmousedown: (e) => { e.preventDefault(); insert(c); },
    }, h('strong', null, '@' + c.handle), ' ', h('span', { class: 'muted' }, c.kind === 'team' ? `team · ${c.name}` : c.name))));
    list.hidden = false;
    input.setAttribute('aria-expanded', 'true');
    paint();
  };

  input.setAttribute('role', 'combobox');
  input.setAttribute('aria-autocomplete', 'list');
  input.setAttribute('aria-controls', list.id);
  input.setAttribute('aria-expanded', 'false');
  list.setAttribute('role', 'listbox');
  list.setAttribute('aria-label', 'People and teams');
  input.addEventListener('input', update, { signal });
  input.addEventListener('click', update, { signal });
  input.addEventListener('blur', close, { signal });
  input.addEventListener('keydown', (e) => {
    if (list.hidden || !items.length) return;
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      active = (active + (e.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length;
      paint();
    } else if (e.key === 'Enter' || e.key === 'Tab') {
      e.preventDefault();
      e.stopImmediatePropagation();
      insert(items[active]);
    } else if (e.key === 'Escape') {
      e.preventDefault();
      e.stopPropagation();
      close();
    }
  }, { signal });
  return () => !list.hidden;
}
