// Topics: pick a topic, read its messages from an offset (key, headers, and the
// value as text, pretty JSON or hex), and produce a test message from a form.

import { messages, enc } from '../api.js';
import { h, clear, num, bytes, retention, time, headerChips, renderValue, errorBox } from '../format.js';

const PAGE = 20;

let view = null;

export function mount(root, [name], ctx) {
  const offset = h('input', { id: 'read-offset', type: 'number', min: 0, step: 1, placeholder: 'latest' });
  const mode = h('select', { id: 'value-mode', 'aria-label': 'Show values as', onchange: () => drawMessages() },
    h('option', { value: 'text' }, 'Text'), h('option', { value: 'json' }, 'JSON'), h('option', { value: 'hex' }, 'Hex'));
  const key = h('input', { id: 'produce-key', placeholder: 'user-123' });
  const headers = h('textarea', { id: 'produce-headers', rows: 2, placeholder: 'content-type: application/json' });
  const value = h('textarea', { id: 'produce-value', rows: 5, required: true, placeholder: '{"user_id": "user-123", "action": "login"}' });
  view = {
    name,
    list: h('div', { class: 'topic-list' }),
    info: h('div', { class: 'topic-info' }),
    messages: h('div', { id: 'messages' }),
    produceResult: h('div', { id: 'produce-result' }),
    offset, mode, key, headers, value,
    read: null,
    listKey: null,
    ctx,
  };
  if (!name) {
    root.append(
      h('div', { class: 'page-head' }, h('h1', {}, 'Topics')),
      h('section', { class: 'panel' }, h('div', { class: 'panel-body' }, view.list)));
    return;
  }
  root.append(
    h('nav', { class: 'crumbs' }, h('a', { href: '#/topics' }, 'Topics'), ' / ', name),
    h('div', { class: 'page-head' }, h('h1', {}, name), view.info),
    h('section', { class: 'panel' },
      h('header', { class: 'panel-head' }, h('h2', {}, 'Messages'),
        h('form', { class: 'toolbar', id: 'read-form', onsubmit: (e) => { e.preventDefault(); read(ctx, offset.value); } },
          h('label', { class: 'inline' }, 'From offset ', offset),
          h('button', { type: 'submit' }, 'Read'),
          h('button', { type: 'button', onclick: () => { offset.value = ''; read(ctx, 'earliest'); } }, 'Earliest'),
          h('button', { type: 'button', onclick: () => { offset.value = ''; read(ctx, ''); } }, 'Latest'),
          h('label', { class: 'inline' }, 'Values ', mode))),
      h('div', { class: 'panel-body' }, view.messages)),
    h('section', { class: 'panel' },
      h('header', { class: 'panel-head' }, h('h2', {}, 'Produce a message')),
      h('div', { class: 'panel-body' },
        h('form', { class: 'form-grid', id: 'produce-form', onsubmit: (e) => produce(e, ctx) },
          h('label', {}, 'Key', key),
          h('label', {}, 'Headers (one "name: value" a line)', headers),
          h('label', { class: 'wide' }, 'Value', value),
          h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Produce'))),
        view.produceResult)));
  read(ctx, '');
}

export function unmount() {
  view = null;
}

function topicInfo(ctx) {
  return ctx.snapshot.topics.find((t) => t.name === view.name);
}

// Reads a page of messages: from `from` (an offset), the first stored ('earliest'),
// or the last page ('').
async function read(ctx, from) {
  // A read that ends after the page moved on (another topic) is dropped.
  const mine = view;
  let offset;
  try {
    if (from === '' || from === undefined || from === 'earliest') {
      // The topic's bounds now, not as of the last poll: the latest page ends at the
      // topic's end.
      const info = await messages.get(`/api/v1/topics/${enc(mine.name)}`).catch(() => null);
      if (view !== mine) return;
      if (from === 'earliest') offset = info ? info.start_offset : 0;
      else offset = info ? Math.max(info.start_offset, info.end_offset - PAGE) : 0;
    } else {
      offset = Number(from);
    }
    const answer = await messages.get(`/api/v1/topics/${enc(mine.name)}/messages?offset=${offset}&max_messages=${PAGE}`);
    if (view !== mine) return;
    view.read = { offset, answer, error: null };
  } catch (e) {
    if (view !== mine) return;
    view.read = { offset, answer: null, error: e };
  }
  drawMessages();
}

function drawMessages() {
  if (!view || !view.read) return;
  const { answer, error, offset } = view.read;
  if (error) {
    clear(view.messages, errorBox(error));
    return;
  }
  if (answer.messages.length === 0) {
    clear(view.messages, h('p', { class: 'empty' },
      `No messages from offset ${offset} (the topic holds ${answer.start_offset} – ${answer.end_offset}).`));
    return;
  }
  const mode = view.mode.value;
  clear(view.messages,
    h('table', { class: 'table messages' },
      h('thead', {}, h('tr', {}, ['Offset', 'Time', 'Key', 'Headers', 'Value'].map((c) => h('th', {}, c)))),
      h('tbody', {}, answer.messages.map((m) => h('tr', { dataset: { offset: m.offset } },
        h('td', { class: 'num mono' }, m.offset),
        h('td', { class: 'muted small nowrap' }, time(m.timestamp)),
        h('td', { class: 'mono' }, m.key ?? h('span', { class: 'muted' }, 'null')),
        h('td', {}, headerChips(m.headers)),
        h('td', { class: 'value-cell' }, renderValue(m, mode)))))),
    h('div', { class: 'pager' },
      h('span', { class: 'muted' }, `offsets ${answer.messages[0].offset} – ${answer.messages[answer.messages.length - 1].offset} of ${answer.start_offset} – ${answer.end_offset}`),
      answer.next_offset < answer.end_offset
        ? h('button', { onclick: () => { view.offset.value = answer.next_offset; read(view.ctx, String(answer.next_offset)); } }, 'Next page')
        : null));
}

function parseHeaders(text) {
  const headers = {};
  for (const [i, line] of text.split('\n').entries()) {
    if (!line.trim()) continue;
    const at = line.indexOf(':');
    if (at <= 0) throw { code: 'invalid_header', message: `line ${i + 1} of the headers is not "name: value"` };
    headers[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return headers;
}

async function produce(event, ctx) {
  event.preventDefault();
  clear(view.produceResult);
  try {
    const body = { value: view.value.value, headers: parseHeaders(view.headers.value) };
    if (view.key.value) body.key = view.key.value;
    const stored = await messages.post(`/api/v1/topics/${enc(view.name)}/messages`, { json: body });
    clear(view.produceResult, h('div', { class: 'callout callout-ok', role: 'status' },
      `Stored in ${stored.topic} at offset ${stored.offset}.`));
    await ctx.act('Refreshing', async () => {});
    if (view && view.offset.value === '') read(ctx, '');
  } catch (e) {
    clear(view.produceResult, errorBox(e));
  }
}

export function update(ctx) {
  if (!view) return;
  const topics = ctx.snapshot.topics;
  if (!view.name) {
    const key = JSON.stringify(topics.map((t) => [t.name, t.end_offset, t.size_bytes]));
    if (key === view.listKey) return;
    view.listKey = key;
    clear(view.list, topics.length === 0
      ? h('p', { class: 'empty' }, 'No topics yet. Producing to a topic creates it.')
      : h('table', { class: 'table' },
        h('thead', {}, h('tr', {}, ['Topic', 'Messages', 'Offsets', 'Size', 'Retention'].map((c, i) => h('th', { class: i && i < 4 ? 'num' : null }, c)))),
        h('tbody', {}, topics.map((t) => h('tr', {},
          h('td', {}, h('a', { href: `#/topics/${enc(t.name)}` }, t.name)),
          h('td', { class: 'num' }, num(t.message_count)),
          h('td', { class: 'num' }, `${num(t.start_offset)} – ${num(t.end_offset)}`),
          h('td', { class: 'num' }, bytes(t.size_bytes)),
          h('td', {}, retention(t.retention)))))));
    return;
  }
  const info = topicInfo(ctx);
  // Reading the latest page follows the topic as it grows.
  if (info && view.offset.value === '' && view.read && view.read.answer && view.read.answer.next_offset < info.end_offset) {
    read(ctx, '');
  }
  clear(view.info, info
    ? h('div', { class: 'muted' }, `${num(info.message_count)} messages · offsets ${num(info.start_offset)} – ${num(info.end_offset)} · ${bytes(info.size_bytes)} · retention ${retention(info.retention)}`)
    : h('div', { class: 'muted' }, 'This topic does not exist yet: producing to it creates it.'));
}
