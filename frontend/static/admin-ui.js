// Small builders shared by the full-width pages (preferences, admin, stats): labelled
// fields, selects, cards, tables, error lines, busy buttons. Text only, as everywhere.

import { h, setText } from './dom.js';

let seq = 0;
/** uid gives a fresh element id for label/input pairs. */
export const uid = (p = 'f') => `${p}-${++seq}`;

/** field wraps a control with its label (and an optional hint below). */
export function field(label, control, hint) {
  if (!control.id) control.id = uid();
  const parts = [h('label', { for: control.id, text: label }), control];
  if (hint) {
    const hid = uid('hint');
    control.setAttribute('aria-describedby', hid);
    parts.push(h('small', { id: hid, class: 'pg-hint', text: hint }));
  }
  return h('div', { class: 'pg-field' }, parts);
}

/** check is a checkbox with its label to the right. */
export function check(label, checked, props = {}) {
  const box = h('input', { type: 'checkbox', ...props });
  box.checked = !!checked;
  return { box, el: h('label', { class: 'pg-check' }, box, label) };
}

/** select builds a <select> from [value, label] pairs and selects value. */
export function select(options, value, props = {}) {
  const el = h('select', props, options.map(([v, label]) => h('option', { value: v, text: label })));
  el.value = value == null ? '' : String(value);
  return el;
}

export const card = (title, ...children) =>
  h('section', { class: 'pg-card' }, title ? h('h2', { text: title }) : null, children);

/** table builds a simple table; rows are arrays of cells (nodes or text). */
export function table(headers, rows, props = {}) {
  return h('div', { class: 'pg-table-wrap' },
    h('table', { class: 'pg-table', ...props },
      h('thead', null, h('tr', null, headers.map((t) => h('th', { scope: 'col', text: t })))),
      h('tbody', null, rows.map((r) => h('tr', null, r.map((c) => h('td', null, c)))))));
}

/** errorLine is a role="alert" paragraph; set its text with setText. */
export const errorLine = () => h('p', { class: 'form-error', role: 'alert' });
/** statusLine is a polite status paragraph for "Saved." and the like. */
export const statusLine = () => h('p', { class: 'pg-status', role: 'status' });

/**
 * run disables button while fn runs; a failure's message goes to errEl, and a success's
 * optional text to okEl (cleared after a while).
 */
export async function run(button, errEl, fn, okEl, okText) {
  if (button) button.disabled = true;
  if (errEl) setText(errEl, '');
  if (okEl) setText(okEl, '');
  try {
    const out = await fn();
    if (okEl && okText) {
      setText(okEl, okText);
      setTimeout(() => { if (okEl.textContent === okText) setText(okEl, ''); }, 4000);
    }
    return out;
  } catch (err) {
    if (err?.name === 'AbortError') return undefined;
    if (errEl) setText(errEl, err?.message || String(err));
    else console.warn('switchboard:', err);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

/**
 * copyButton copies text to the clipboard. Where the Clipboard API is missing (plain http
 * is not a secure context) it selects the text shown in el, for Ctrl+C, and tries the
 * older copy command.
 */
export function copyButton(text, el, label = 'Copy') {
  const b = h('button', { type: 'button', class: 'btn btn-small', text: label });
  b.addEventListener('click', async () => {
    let done = false;
    try {
      await navigator.clipboard.writeText(text);
      done = true;
    } catch {
      if (el) {
        const r = document.createRange();
        r.selectNodeContents(el);
        getSelection().removeAllRanges();
        getSelection().addRange(r);
        try { done = document.execCommand('copy'); } catch { /* selected, at least */ }
      }
    }
    setText(b, done ? 'Copied' : 'Selected: press Ctrl+C');
    setTimeout(() => setText(b, label), 2500);
  });
  return b;
}

/** duration formats seconds as "45 s", "12 min", "3 h 5 min", "2 d 4 h"; "—" for null. */
export function duration(s) {
  if (s == null || !Number.isFinite(s)) return '—';
  s = Math.round(s);
  if (s < 60) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  const hh = Math.floor(m / 60);
  if (hh < 24) return m % 60 ? `${hh} h ${m % 60} min` : `${hh} h`;
  const d = Math.floor(hh / 24);
  return hh % 24 ? `${d} d ${hh % 24} h` : `${d} d`;
}

/** pageHead is the page's title row with an optional lead paragraph. */
export function pageHead(title, lead, ...extra) {
  return h('header', { class: 'pg-head' }, h('h1', { text: title, tabindex: '-1' }),
    lead ? h('p', { class: 'pg-lead', text: lead }) : null, extra);
}
