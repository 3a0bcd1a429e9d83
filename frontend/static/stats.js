// The stats page (#/stats): handling times from GET /api/stats — median and 90th
// percentile of first response and resolution, overall, per agent and per channel, for
// issues opened in the chosen range — and the counts as they stand now.

import { request } from './api.js';
import { h, setText } from './dom.js';
import { card, duration, errorLine, field, pageHead, select, table } from './admin-ui.js';

const RANGES = [['1', 'Last 24 hours'], ['7', 'Last 7 days'], ['30', 'Last 30 days'], ['90', 'Last 90 days'], ['365', 'Last 12 months'], ['custom', 'Dates…']];
const DAY = 86400000;

const cells = (f) => [
  duration(f.first_response?.median_seconds), duration(f.first_response?.p90_seconds),
  duration(f.resolution?.median_seconds), duration(f.resolution?.p90_seconds),
];
const HEAD = ['First response, median', 'First response, p90', 'Resolution, median', 'Resolution, p90'];

function figure(label, value, tone) {
  return h('div', { class: `stat${tone ? ` stat-${tone}` : ''}` }, h('span', { class: 'stat-value', text: String(value) }), h('span', { class: 'stat-label', text: label }));
}

export const statsPage = {
  title: 'Stats',
  render(container, ctx) {
    let ac = null;
    const range = select(RANGES, '30', { id: 'stats-range' });
    const chans = select([['', 'All my channels'], ...(ctx.channels() || []).filter((c) => c.kind === 'sms' || c.kind === 'email').map((c) => [c.id, c.name])], '', { id: 'stats-channel' });
    const day = (d) => d.toISOString().slice(0, 10);
    const from = h('input', { type: 'date', id: 'stats-from', value: day(new Date(Date.now() - 30 * DAY)) });
    const until = h('input', { type: 'date', id: 'stats-to', value: day(new Date()) });
    const dates = h('div', { class: 'pg-row', hidden: true }, field('From', from), field('Until (inclusive)', until));
    const err = errorLine();
    const out = h('div', { id: 'stats-body', class: 'pg-stack', 'aria-live': 'polite' });
    container.append(pageHead('Stats', 'How quickly issues get a first answer and get resolved.'),
      h('div', { class: 'pg-row pg-filters' }, field('Issues opened in', range), field('Channel', chans), dates), err, out);

    async function load() {
      ac?.abort();
      ac = new AbortController();
      dates.hidden = range.value !== 'custom';
      let a;
      let b = new Date();
      if (range.value === 'custom') {
        // Whole days in this browser's time zone; the server checks the order and the span.
        a = new Date(`${from.value}T00:00`);
        b = new Date(new Date(`${until.value}T00:00`).getTime() + DAY);
        if (Number.isNaN(a.getTime()) || Number.isNaN(b.getTime())) {
          setText(err, 'Choose both dates.');
          return;
        }
      } else {
        a = new Date(b - Number(range.value) * DAY);
      }
      const q = new URLSearchParams({ from: a.toISOString(), to: b.toISOString() });
      if (chans.value) q.set('channel', chans.value);
      out.setAttribute('aria-busy', 'true');
      setText(err, '');
      try {
        const s = await request('GET', `/api/stats?${q}`, undefined, { signal: ac.signal });
        const c = s.counts || {};
        const fr = s.overall?.first_response || {};
        out.replaceChildren(
          card('Now', h('div', { class: 'stats-figures', id: 'stats-counts' },
            figure('Open', c.open ?? 0), figure('Unassigned', c.unassigned ?? 0, c.unassigned ? 'warn' : ''),
            figure('SLA breached', c.breached ?? 0, c.breached ? 'bad' : ''))),
          card('Overall', h('div', { class: 'stats-figures', id: 'stats-overall' },
            figure('Issues opened', s.issues ?? 0),
            figure('First response, median', duration(fr.median_seconds)),
            figure('First response, p90', duration(fr.p90_seconds)),
            figure('Resolution, median', duration(s.overall?.resolution?.median_seconds)),
            figure('Resolution, p90', duration(s.overall?.resolution?.p90_seconds)))),
          card('Per agent', (s.agents || []).length
            ? table(['Agent', 'Answered', 'Resolved', ...HEAD], s.agents.map((a) => [a.name || `#${a.agent_id}`, String(a.first_response?.count ?? 0), String(a.resolution?.count ?? 0), ...cells(a)]), { id: 'stats-agents' })
            : h('p', { class: 'pg-muted', text: 'No issues handled in this range.' })),
          card('Per channel', (s.channels || []).length
            ? table(['Channel', 'Issues', ...HEAD], s.channels.map((x) => [x.name || `#${x.channel_id}`, String(x.issues), ...cells(x)]), { id: 'stats-channels' })
            : h('p', { class: 'pg-muted', text: 'No issues opened in this range.' })));
      } catch (e) {
        if (e.name !== 'AbortError') setText(err, `Could not load the figures: ${e.message}`);
      } finally {
        out.removeAttribute('aria-busy');
      }
    }
    for (const el of [range, chans, from, until]) el.addEventListener('change', load);
    load();
    return () => ac?.abort();
  },
};
