// One pipeline: its state and position, throughput and latency over the last five
// minutes (the broker's 5 s buckets), counts, definition, the last messages of its error topic with their
// failure headers, start/stop, and moving it to another module version.

import { admin, messages, enc } from '../api.js';
import { h, clear, num, rate, ms, time, stateBadge, headerChips, renderValue, errorBox } from '../format.js';
import { lineChart } from '../chart.js';
import { canaryPanel, operatePanel, boundedRuns } from './operate.js';

const LAST_ERRORS = 10;

let view = null;

export async function mount(root, [id]) {
  view = {
    id,
    head: h('div', { class: 'page-head' }),
    failure: h('div'),
    counts: h('div', { class: 'cards cards-compact' }),
    charts: h('div', { class: 'charts' }),
    canary: h('div'),
    operate: h('div'),
    runs: h('div', { id: 'bounded-runs-box' }),
    definition: h('div', { class: 'panel-body' }),
    errors: h('div', { class: 'panel-body' }),
    versions: [],
    errorsEnd: null,
  };
  root.append(
    h('nav', { class: 'crumbs' }, h('a', { href: '#/' }, 'Overview'), ' / ', 'Pipeline'),
    view.head, view.failure, view.counts, view.charts, view.canary,
    h('div', { class: 'columns' },
      h('section', { class: 'panel' },
        h('header', { class: 'panel-head' }, h('h2', {}, 'Definition')), view.definition),
      h('section', { class: 'panel', id: 'last-errors' },
        h('header', { class: 'panel-head' }, h('h2', {}, 'Last errors')), view.errors)),
    view.operate,
  );
}

export function unmount() {
  view = null;
}

function semverDesc(a, b) {
  const pa = a.split(/[.+-]/).map((x) => (Number.isNaN(Number(x)) ? x : Number(x)));
  const pb = b.split(/[.+-]/).map((x) => (Number.isNaN(Number(x)) ? x : Number(x)));
  for (let i = 0; i < Math.max(pa.length, pb.length); i += 1) {
    if (pa[i] === pb[i]) continue;
    if (pa[i] === undefined) return -1;
    if (pb[i] === undefined) return 1;
    return pa[i] < pb[i] ? 1 : -1;
  }
  return 0;
}

async function changeVersion(ctx, p, version) {
  if (!version || version === p.module_version) return;
  const ok = await ctx.confirmAction(
    `Move ${p.pipeline_name} to ${p.module_name}@${version}?`,
    `It runs ${p.module_name}@${p.module_version} now. It finishes the batch in hand, commits it, and runs ${version} from the next message on; every output carries x-rustmq-module-version.`,
    `Use ${version}`);
  if (!ok) return;
  const updated = await ctx.act('Changing the version', () =>
    admin.patch(`/api/v1/etl/pipelines/${enc(p.pipeline_id)}`, { json: { module_version: version } }));
  if (updated) ctx.toast(`${updated.pipeline_name} now runs ${updated.module_name}@${updated.module_version}`);
}

function renderHead(ctx, p) {
  const running = p.status === 'running' || p.status === 'stalled' || p.status === 'recovering';
  const select = h('select', { id: 'module-version', 'aria-label': 'Module version' },
    view.versions.map((v) => h('option', { value: v, selected: v === p.module_version },
      v === p.module_version ? `${v} (current)` : v)));
  clear(view.head,
    h('div', {},
      h('h1', {}, p.pipeline_name, ' ', stateBadge(p.status)),
      h('div', { class: 'muted' }, p.pipeline_id, p.description ? ` · ${p.description}` : '')),
    h('div', { class: 'toolbar' },
      running
        ? h('button', { onclick: () => ctx.act('Stopping', () => admin.post(`/api/v1/etl/pipelines/${enc(p.pipeline_id)}/stop`)) }, 'Stop')
        : h('button', { class: 'primary', onclick: () => ctx.act('Starting', () => admin.post(`/api/v1/etl/pipelines/${enc(p.pipeline_id)}/start`)) }, 'Start'),
      h('label', { class: 'inline' }, 'Version ', select),
      h('button', { onclick: () => changeVersion(ctx, p, select.value) }, 'Change version')));
  clear(view.failure, p.failure ? errorBox({ code: p.status, message: p.failure }) : null);
}

function renderCounts(m, p) {
  const cell = (label, value, key, tone) => h('div', { class: `card${tone ? ` card-${tone}` : ''}`, dataset: { metric: key } },
    h('div', { class: 'card-label' }, label), h('div', { class: 'card-value' }, value));
  clear(view.counts,
    cell('Processed', num(m.messages_processed), 'processed'),
    cell('Produced', num(m.messages_produced), 'produced'),
    cell('Filtered', num(m.messages_filtered), 'filtered'),
    cell('Failed', num(m.messages_failed), 'failed', m.messages_failed ? 'bad' : null),
    cell('Retries', num(m.retries), 'retries'),
    cell('Recycles', num(m.instance_recycles), 'recycles'),
    cell('Committed offset', num(p.committed_offset), 'committed'),
    cell('Lag', num(p.lag), 'lag', p.lag ? 'warn' : null));
}

// The broker keeps the last five minutes in 5 s buckets; each point is a bucket, drawn
// at its end (the current one, partial, at now), from the pipeline's creation on.
function renderCharts(ctx, p, history) {
  const now = Date.now();
  const at = (s) => Math.min(now, s.at_ms + history.bucket_ms);
  const pts = (key) => history.samples
    .filter((s) => s[key] !== null && at(s) >= p.created_at_ms)
    .map((s) => [at(s), s[key]]);
  const seconds = history.bucket_ms / 1000;
  clear(view.charts,
    lineChart({ title: `Throughput (messages per second, ${seconds} s buckets)`, windowMs: ctx.WINDOW_MS, format: (v) => rate(v),
      series: [{ name: 'in', tone: 'a', points: pts('throughput_msgs_per_sec') }] }),
    lineChart({ title: `Module time per message (${seconds} s buckets)`, windowMs: ctx.WINDOW_MS, format: (v) => ms(v),
      series: [{ name: 'p50', tone: 'b', points: pts('p50_processing_time_ms') }, { name: 'p99', tone: 'c', points: pts('p99_processing_time_ms') }] }));
}

function renderDefinition(p) {
  const row = (k, v) => [h('dt', {}, k), h('dd', {}, v)];
  const topic = (t) => (t ? h('a', { href: `#/topics/${enc(t)}` }, t) : h('span', { class: 'muted' }, 'none'));
  clear(view.definition, h('dl', { class: 'props' },
    row('Source', topic(p.source_topic)),
    row('Destination', topic(p.destination_topic)),
    p.routes && p.routes.length ? row('Routes', p.routes.map((r, i) => [i ? ', ' : '', topic(r)])) : null,
    row('Error topic', topic(p.error_topic)),
    row('Module', [p.module_name, h('span', { class: 'version' }, `@${p.module_version}`),
      h('span', { class: 'muted' }, ` (requirement ${p.module_requirement})`)]),
    row('Delivery', p.delivery),
    row('Created', time(p.created_at_ms)),
    p.start_offset !== undefined && p.start_offset !== null ? row('Range', `${p.start_offset} – ${p.end_offset ?? '…'}`) : null,
    row('Configuration', h('pre', { class: 'value value-json' }, JSON.stringify(p.configuration, null, 2)))));
}

async function renderErrors(ctx, p) {
  if (!p.error_topic) {
    clear(view.errors, h('p', { class: 'empty' }, 'This pipeline has no error topic: failures stop it instead.'));
    return;
  }
  const info = ctx.snapshot.topics.find((t) => t.name === p.error_topic);
  if (!info || info.message_count === 0) {
    view.errorsEnd = null;
    clear(view.errors, h('p', { class: 'empty' }, `No errors: ${p.error_topic} is empty.`));
    return;
  }
  if (view.errorsEnd === info.end_offset) return;
  view.errorsEnd = info.end_offset;
  const from = Math.max(info.start_offset, info.end_offset - LAST_ERRORS);
  let read;
  try {
    read = await messages.get(`/api/v1/topics/${enc(p.error_topic)}/messages?offset=${from}&max_messages=${LAST_ERRORS}`);
  } catch (e) {
    view.errorsEnd = null;
    clear(view.errors, errorBox(e));
    return;
  }
  if (!view) return;
  clear(view.errors,
    h('ol', { class: 'errors', reversed: true }, read.messages.slice().reverse().map((m) =>
      h('li', { class: 'error-item' },
        h('div', { class: 'error-line' },
          h('span', { class: 'offset' }, `#${m.offset}`), ' ',
          h('strong', {}, (m.headers && m.headers['x-rustmq-error']) || 'error'),
          h('span', { class: 'muted' }, ` ${time(m.timestamp)}`),
          m.key !== undefined && m.key !== null ? h('span', { class: 'muted' }, ` · key ${m.key}`) : null),
        headerChips(m.headers),
        renderValue(m, 'text')))),
    h('a', { href: `#/topics/${enc(p.error_topic)}` }, `Open ${p.error_topic} in the topic browser →`));
}

export async function update(ctx) {
  if (!view) return;
  const p = ctx.snapshot.pipelines.find((x) => x.pipeline_id === view.id);
  if (!p) {
    clear(view.head, h('h1', {}, 'No such pipeline'), h('p', {}, `${view.id} is not defined on this broker.`));
    return;
  }
  const [list, history] = await Promise.all([
    admin.get('/api/v1/etl/modules'),
    admin.get(`/api/v1/etl/pipelines/${enc(p.pipeline_id)}/metrics/history`),
  ]);
  if (!view) return;
  view.versions = list.modules.filter((m) => m.name === p.module_name).map((m) => m.version).sort(semverDesc);
  const m = ctx.snapshot.metrics.pipelines[p.pipeline_id] || {};
  // The head is drawn again only when what it shows changes, so the version the user
  // picked stays picked while the page updates around it.
  const key = [p.status, p.module_version, p.failure, view.versions.join()].join('|');
  if (key !== view.headKey) {
    view.headKey = key;
    renderHead(ctx, p);
  }
  // Panels with forms are drawn again only when what they offer changes, so what
  // is typed in them stays; a running canary's numbers change every poll.
  const canaryKey = JSON.stringify([p.canary, p.canary_event, p.module_version, view.versions, p.canary ? p.versions : null]);
  if (canaryKey !== view.canaryKey) {
    view.canaryKey = canaryKey;
    clear(view.canary, canaryPanel(ctx, p, view.versions));
  }
  const operateKey = JSON.stringify([p.module_version, p.error_topic, view.versions]);
  if (operateKey !== view.operateKey) {
    view.operateKey = operateKey;
    clear(view.operate, operatePanel(ctx, p, view.versions, view.runs));
  }
  clear(view.runs, boundedRuns(ctx, p));
  renderCounts(m, p);
  renderCharts(ctx, p, history);
  renderDefinition(p);
  await renderErrors(ctx, p);
}
