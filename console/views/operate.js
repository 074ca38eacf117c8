// The pipeline page's operations: its canary (start one, see both versions side by
// side, promote or remove it, and how the last one ended), and replay, backfill and
// redrive, with the backfills and redrives it has run and their progress.

import { admin, enc } from '../api.js';
import { h, clear, num, ms, time, stateBadge } from '../format.js';

// A position as the API takes it: "earliest", "latest", an offset, or a time.
function position(text) {
  const t = text.trim();
  if (t === 'earliest' || t === 'latest') return t;
  if (/^\d+$/.test(t)) return Number(t);
  const when = Date.parse(t);
  if (!Number.isNaN(when)) return { timestamp_ms: when };
  throw { code: 'invalid_position', message: `"${text}" is not a position: give earliest, latest, an offset, or a date and time` };
}

function field(label, input) {
  return h('label', {}, label, input);
}

export function canaryPanel(ctx, p, versions) {
  const others = versions.filter((v) => v !== p.module_version);
  const body = [];
  if (p.canary) {
    const c = p.canary;
    body.push(h('p', { id: 'canary-running' },
      h('strong', {}, `Canary ${c.module_version}`), ` takes ${c.percent} % of the messages by ${c.by}`,
      c.max_error_rate !== undefined && c.max_error_rate !== null
        ? `; rolled back above ${(c.max_error_rate * 100).toFixed(1)} % errors over ${c.window_secs} s (after ${c.min_messages} messages)`
        : '; no automatic rollback',
      '.'));
    if (p.versions && p.versions.length) {
      body.push(h('table', { class: 'table', id: 'canary-versions' },
        h('thead', {}, h('tr', {}, ['Role', 'Version', 'Handled', 'Failed', 'Errors (window)', 'p99 (window)', 'p99 (since start)']
          .map((x, i) => h('th', { class: i >= 2 ? 'num' : null }, x)))),
        h('tbody', {}, p.versions.map((v) => h('tr', { dataset: { role: v.role } },
          h('td', {}, h('span', { class: `badge ${v.role === 'canary' ? 'badge-warn' : 'badge-info'}` }, v.role)),
          h('td', { class: 'version-cell' }, v.module_version),
          h('td', { class: 'num' }, num(v.messages_handled)),
          h('td', { class: `num${v.messages_failed ? ' bad-text' : ''}` }, num(v.messages_failed)),
          h('td', { class: 'num' }, `${(v.window_error_rate * 100).toFixed(1)} %`),
          h('td', { class: 'num' }, v.window_p99_processing_time_ms === null ? '–' : ms(v.window_p99_processing_time_ms)),
          h('td', { class: 'num' }, ms(v.p99_processing_time_ms)))))));
    }
    body.push(h('div', { class: 'actions' },
      h('button', {
        onclick: async () => {
          if (!await ctx.confirmAction(`Remove canary ${c.module_version}?`,
            `${p.pipeline_name} goes back to ${p.module_version} for every message at its next batch boundary.`, 'Remove canary')) return;
          if (await ctx.act('Removing the canary', () => admin.patch(`/api/v1/etl/pipelines/${enc(p.pipeline_id)}`, { json: { canary: null } }))) ctx.toast('Canary removed');
        },
      }, 'Remove canary'),
      h('button', {
        class: 'primary',
        onclick: async () => {
          if (!await ctx.confirmAction(`Promote ${c.module_version}?`,
            `${p.pipeline_name} is pinned to ${p.module_name}@${c.module_version} for every message from its next batch boundary, and the canary ends.`, `Promote ${c.module_version}`)) return;
          const s = await ctx.act('Promoting', () => admin.post(`/api/v1/etl/pipelines/${enc(p.pipeline_id)}/promote`));
          if (s) ctx.toast(`${s.pipeline_name} now runs ${s.module_name}@${s.module_version}`);
        },
      }, 'Promote')));
  } else if (others.length === 0) {
    body.push(h('p', { class: 'empty' }, `Upload another version of ${p.module_name} to try it as a canary.`));
  } else {
    const version = h('select', { id: 'canary-version' }, others.map((v) => h('option', { value: v }, v)));
    const percent = h('input', { id: 'canary-percent', type: 'number', min: 1, max: 99, value: 10, required: true });
    const by = h('select', { id: 'canary-by' }, h('option', { value: 'message' }, 'message'), h('option', { value: 'key' }, 'key'));
    const rate = h('input', { id: 'canary-max-error-rate', type: 'number', min: 0, max: 100, step: 'any', placeholder: 'none' });
    body.push(h('form', {
      class: 'form-grid form-grid-4', id: 'canary-form',
      onsubmit: async (e) => {
        e.preventDefault();
        const canary = { module_version: version.value, percent: Number(percent.value), by: by.value };
        if (rate.value !== '') canary.max_error_rate = Number(rate.value) / 100;
        const s = await ctx.act('Starting the canary', () => admin.patch(`/api/v1/etl/pipelines/${enc(p.pipeline_id)}`, { json: { canary } }));
        if (s) ctx.toast(`Canary ${s.canary.module_version} takes ${s.canary.percent} % of ${s.pipeline_name}`);
      },
    },
    field('Version', version), field('Share (%)', percent), field('Split by', by), field('Roll back above (% errors)', rate),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Start canary'))));
  }
  if (p.canary_event) {
    const e = p.canary_event;
    body.push(h('p', { class: `callout ${e.event === 'rolled_back' ? 'callout-bad' : 'callout-ok'}`, id: 'canary-event' },
      `Canary ${e.module_version} ${e.event.replace('_', ' ')} at ${time(e.at_ms)}`, e.reason ? `: ${e.reason}` : ''));
  }
  return h('section', { class: 'panel', id: 'canary' },
    h('header', { class: 'panel-head' }, h('h2', {}, 'Canary')), h('div', { class: 'panel-body' }, body));
}

// The backfills and redrives this pipeline started, newest first, with progress.
export function boundedRuns(ctx, p) {
  const mine = ctx.snapshot.pipelines.filter((c) => c.pipeline_name.startsWith(`${p.pipeline_name}.backfill-`)
    || c.pipeline_name.startsWith(`${p.pipeline_name}.redrive-`));
  if (!mine.length) return h('p', { class: 'empty' }, 'No backfills or redrives yet.');
  return h('table', { class: 'table', id: 'bounded-runs' },
    h('thead', {}, h('tr', {}, ['Run', 'State', 'Version', 'Into', 'Progress'].map((x) => h('th', {}, x)))),
    h('tbody', {}, mine.slice().reverse().map((c) => {
      const start = c.start_offset ?? 0;
      const end = c.end_offset ?? 0;
      const done = Math.min(Math.max(c.committed_offset - start, 0), Math.max(end - start, 0));
      const total = Math.max(end - start, 0);
      const share = total ? Math.round((done * 100) / total) : 100;
      return h('tr', { dataset: { run: c.pipeline_name } },
        h('td', {}, h('a', { href: `#/pipelines/${enc(c.pipeline_id)}` }, c.pipeline_name)),
        h('td', {}, stateBadge(c.status)),
        h('td', { class: 'version-cell' }, c.module_version),
        h('td', {}, h('a', { href: `#/topics/${enc(c.destination_topic)}` }, c.destination_topic)),
        h('td', {}, h('div', { class: 'progress' }, h('progress', { max: 100, value: share }),
          h('span', { class: 'muted small' }, `${num(done)} / ${num(total)} (${share} %)`))));
    })));
}

// The forms; `runs` is where `boundedRuns` is drawn, poll by poll.
export function operatePanel(ctx, p, versions, runs) {
  const pinned = () => h('select', {}, versions.map((v) => h('option', { value: v, selected: v === p.module_version }, v)));
  const resetTo = h('input', { id: 'reset-to', placeholder: 'earliest, latest, an offset, or 2026-12-05T10:00:00Z', required: true });
  const bfFrom = h('input', { id: 'backfill-from', placeholder: 'earliest', required: true });
  const bfTo = h('input', { id: 'backfill-to', placeholder: 'latest', required: true });
  const bfInto = h('input', { id: 'backfill-into', placeholder: `${p.destination_topic}-backfill`, required: true });
  const bfVersion = pinned();
  bfVersion.id = 'backfill-version';
  const rdVersion = pinned();
  rdVersion.id = 'redrive-version';
  // A failure (a bad position included) is shown by `act` as the API or the form said it.
  const run = (label, fn) => async (e) => {
    e.preventDefault();
    const s = await ctx.act(label, fn);
    if (s) ctx.toast(`${label}: ${s.pipeline_name || s.pipeline_id} ${s.state || s.status || ''}`.trim());
  };
  const base = `/api/v1/etl/pipelines/${enc(p.pipeline_id)}`;
  return h('section', { class: 'panel', id: 'operate' },
    h('header', { class: 'panel-head' }, h('h2', {}, 'Replay, backfill, redrive')),
    h('div', { class: 'panel-body operate' },
      h('form', { class: 'form-grid', id: 'reset-form', onsubmit: run('Reset', async () => {
        const to = position(resetTo.value);
        if (!await ctx.confirmAction(`Reset ${p.pipeline_name} to ${resetTo.value}?`,
          'Its committed position moves there at a batch boundary. What it already wrote downstream stays: messages after that position are delivered again.', 'Reset')) return undefined;
        return admin.post(`${base}/reset`, { json: { to } });
      }) },
      h('h3', { class: 'wide' }, 'Replay from a position'),
      field('To', resetTo),
      h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Reset position'))),
      h('form', { class: 'form-grid form-grid-4', id: 'backfill-form', onsubmit: run('Backfill', () => admin.post(`${base}/backfill`, {
        json: { from: position(bfFrom.value), to: position(bfTo.value), into: bfInto.value.trim(), module_version: bfVersion.value },
      })) },
      h('h3', { class: 'wide' }, 'Backfill a range into a side topic'),
      field('From', bfFrom), field('To', bfTo), field('Into topic', bfInto), field('Version', bfVersion),
      h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Start backfill'))),
      p.error_topic
        ? h('form', { class: 'form-grid', id: 'redrive-form', onsubmit: run('Redrive', () => admin.post(`${base}/redrive`, { json: { module_version: rdVersion.value } })) },
          h('h3', { class: 'wide' }, `Redrive the dead letters of ${p.error_topic}`),
          field('Version', rdVersion),
          h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Start redrive')))
        : null,
      h('h3', {}, 'Backfills and redrives'),
      runs));
}
