// DOM helpers. Everything the app shows is built with createElement and text nodes:
// customer and user text is hostile and is never parsed as markup.

/**
 * h builds an element. props: "class", "text" (textContent), "on<event>" listeners,
 * "dataset" (object), and any other key as an attribute (true → present, false/null → absent).
 * Children may be nodes, strings (added as text nodes), arrays, or null.
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [key, value] of Object.entries(props)) {
      if (value == null || value === false) continue;
      if (key === 'class') el.className = value;
      else if (key === 'text') el.textContent = String(value);
      else if (key === 'dataset') Object.assign(el.dataset, value);
      else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

/** append adds children to el; strings become text nodes. */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** clear removes every child of el. */
export function clear(el) {
  el.replaceChildren();
  return el;
}

/** setText replaces el's content with plain text. */
export function setText(el, text) {
  el.textContent = text == null ? '' : String(text);
  return el;
}

/** show toggles the hidden attribute. */
export function show(el, visible) {
  el.hidden = !visible;
  return el;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
const dayTimeFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit' });
const yearTimeFmt = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'short' });

/** timeElement renders a <time> with a short label and the full date as a tooltip. */
export function timeElement(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return h('time', { class: 'msg-time' });
  const now = new Date();
  let label;
  if (d.toDateString() === now.toDateString()) label = timeFmt.format(d);
  else if (d.getFullYear() === now.getFullYear()) label = dayTimeFmt.format(d);
  else label = yearTimeFmt.format(d);
  return h('time', { class: 'msg-time', datetime: d.toISOString(), title: fullFmt.format(d) }, label);
}

/** initials gives up to two letters (or digits) for an avatar; '' when there are none. */
export function initials(name) {
  const words = String(name || '')
    .split(/\s+/)
    .map((w) => w.replace(/[^\p{L}\p{N}]/gu, ''))
    .filter(Boolean);
  if (words.length === 0) return '';
  const first = [...words[0]][0];
  const last = words.length > 1 ? [...words[words.length - 1]][0] : '';
  return (first + last).toUpperCase();
}

/** hue picks one of eight avatar colours from a stable key. */
export function hue(key) {
  const s = String(key);
  let n = 0;
  for (let i = 0; i < s.length; i++) n = (n * 31 + s.charCodeAt(i)) >>> 0;
  return n % 8;
}
