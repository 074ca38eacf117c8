// Overview: the broker at a glance — totals, every pipeline with its state, version,
// throughput and lag, and every topic with its offsets, size and retention.

import { h, clear, num, rate, bytes, retention, time, stateBadge } from '../format.js';

let parts = null;

export function mount(root) {
  parts = {
    cards: h('div', { class: 'cards' }),
    pipelines: h('div', { class: 'panel-body' }),
    topics: h('div', { class: 'panel-body' }),
  };
  root.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Overview')),
    parts.cards,
    h('section', { class: 'panel', id: 'pipelines' },
      h('header', { class: 'panel-head' }, h('h2', {}, 'Pipelines')),
      parts.pipelines),
    h('section', { class: 'panel', id: 'topics' },
      h('header', { class: 'panel-head' }, h('h2', {}, 'Topics')),
      parts.topics),
  );
}

export function unmount() {
  parts = null;
}

function card(label, value, detail, tone) {
  return h('div', { class: `card${tone ? ` card-${tone}` : ''}` },
    h('div', { class: 'card-label' }, label),
    h('div', { class: 'card-value' }, value),
    h('div', { class: 'card-detail' }, detail));
}

export function update(ctx) {
  if (!parts) return;
  const { status, metrics, pipelines, topics } = ctx.snapshot;
  const etl = metrics.etl;
  const totalRate = pipelines.reduce((sum, p) => sum + (ctx.lastRate(p.pipeline_id) || 0), 0);
  const storage = status.storage;
  clear(parts.cards,
    card('Pipelines', `${etl.pipelines_running} / ${etl.pipelines_total}`, 'running / defined',
      etl.pipelines_failed ? 'bad' : null),
    card('Throughput', rate(totalRate), 'messages in, all pipelines'),
    card('Processed', num(etl.messages_processed), `${num(etl.messages_failed)} failed · ${num(etl.messages_filtered)} filtered`,
      etl.messages_failed ? 'warn' : null),
    card('Modules', num(etl.modules), `${num(etl.modules_compiled)} compiled`),
    card('Topics', num(topics.length), `${bytes(storage.size_bytes)} on disk`),
    card('Storage', storage.writable ? 'writable' : 'read-only',
      `${bytes(storage.free_bytes)} free`, storage.writable ? null : 'bad'),
  );

  if (pipelines.length === 0) {
    clear(parts.pipelines, h('p', { class: 'empty' },
      'No pipelines yet. Create one with POST /api/v1/etl/pipelines or ',
      h('code', {}, 'rustmq-etl pipeline create'), '.'));
  } else {
    clear(parts.pipelines, h('table', { class: 'table' },
      h('thead', {}, h('tr', {},
        ['Pipeline', 'State', 'Flow', 'Module', 'Throughput', 'Lag', 'Processed', 'Failed']
          .map((c, i) => h('th', { class: i >= 4 ? 'num' : null }, c)))),
      h('tbody', {}, pipelines.map((p) => {
        const m = metrics.pipelines[p.pipeline_id] || {};
        const r = ctx.lastRate(p.pipeline_id);
        return h('tr', { dataset: { pipeline: p.pipeline_id } },
          h('td', {}, h('a', { href: `#/pipelines/${encodeURIComponent(p.pipeline_id)}` }, p.pipeline_name),
            h('div', { class: 'muted small' }, p.pipeline_id)),
          h('td', {}, stateBadge(p.status)),
          h('td', { class: 'flow' },
            h('a', { href: `#/topics/${encodeURIComponent(p.source_topic)}` }, p.source_topic), ' → ',
            h('a', { href: `#/topics/${encodeURIComponent(p.destination_topic)}` }, p.destination_topic)),
          h('td', {}, p.module_name, h('span', { class: 'version' }, `@${p.module_version}`)),
          h('td', { class: 'num' }, r === null ? '–' : rate(r)),
          h('td', { class: `num${p.lag ? ' warn-text' : ''}` }, num(p.lag)),
          h('td', { class: 'num', dataset: { metric: 'processed' } }, num(m.messages_processed)),
          h('td', { class: `num${m.messages_failed ? ' bad-text' : ''}` }, num(m.messages_failed)));
      }))));
  }

  clear(parts.topics, topics.length === 0
    ? h('p', { class: 'empty' }, ctx.snapshot.topicsError
      ? `The message API did not answer: ${ctx.snapshot.topicsError.message}`
      : 'No topics yet. Producing to a topic creates it.')
    : h('table', { class: 'table' },
      h('thead', {}, h('tr', {},
        ['Topic', 'Messages', 'Offsets', 'Size', 'Retention', 'Created']
          .map((c, i) => h('th', { class: i >= 1 && i <= 3 ? 'num' : null }, c)))),
      h('tbody', {}, topics.map((t) => h('tr', {},
        h('td', {}, h('a', { href: `#/topics/${encodeURIComponent(t.name)}` }, t.name)),
        h('td', { class: 'num' }, num(t.message_count)),
        h('td', { class: 'num' }, `${num(t.start_offset)} – ${num(t.end_offset)}`),
        h('td', { class: 'num' }, bytes(t.size_bytes)),
        h('td', {}, retention(t.retention)),
        h('td', { class: 'muted' }, time(t.created_ms)))))));
}
