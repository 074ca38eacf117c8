// Building the page: a DOM builder that never parses markup (message contents are
// shown as text, whatever they hold), and the formats numbers, sizes and times take.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (name === 'class') node.className = value;
    else if (name === 'dataset') Object.assign(node.dataset, value);
    else if (name in node && typeof value !== 'string') node[name] = value;
    else node.setAttribute(name, value === true ? '' : value);
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

export function num(n) {
  if (n === undefined || n === null) return '–';
  return Number(n).toLocaleString('en-US', { maximumFractionDigits: 1 });
}

export function rate(n) {
  if (!Number.isFinite(n)) return '–';
  if (n >= 100) return `${num(Math.round(n))}/s`;
  return `${n.toFixed(n >= 10 ? 1 : 2)}/s`;
}

export function ms(n) {
  if (!Number.isFinite(n)) return '–';
  if (n >= 100) return `${Math.round(n)} ms`;
  if (n >= 1) return `${n.toFixed(1)} ms`;
  return `${(n * 1000).toFixed(0)} µs`;
}

export function bytes(n) {
  if (n === undefined || n === null) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i === 0 ? v : v.toFixed(v >= 10 ? 0 : 1)} ${units[i]}`;
}

export function duration(secs) {
  const s = Math.floor(secs);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

export function retention(r) {
  if (!r) return '–';
  const parts = [];
  if (r.retention_ms) parts.push(duration(r.retention_ms / 1000));
  if (r.retention_bytes) parts.push(bytes(r.retention_bytes));
  return parts.length ? parts.join(' · ') : 'forever';
}

export function time(msSinceEpoch) {
  if (!msSinceEpoch) return '–';
  const d = new Date(msSinceEpoch);
  const pad = (x, n = 2) => String(x).padStart(n, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

// A run state as a coloured badge.
export function stateBadge(state) {
  const tone = {
    running: 'ok', completed: 'ok', stopped: 'idle', created: 'idle',
    stalled: 'warn', recovering: 'warn', failed: 'bad',
  }[state] || 'idle';
  return h('span', { class: `badge badge-${tone}`, dataset: { state } }, state);
}

export function errorBox(error) {
  return h('div', { class: 'callout callout-bad', role: 'alert' },
    h('strong', {}, error.code || 'error'), ' ', error.message || String(error));
}

// A message value (a string, or base64 for bytes that are not UTF-8) as bytes.
export function valueBytes(message) {
  if (message.value_base64 !== undefined && message.value_base64 !== null) {
    const raw = atob(message.value_base64);
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }
  return new TextEncoder().encode(message.value ?? '');
}

export function hex(bytesArray) {
  const lines = [];
  for (let i = 0; i < bytesArray.length; i += 16) {
    const row = Array.from(bytesArray.slice(i, i + 16));
    const hexPart = row.map((b) => b.toString(16).padStart(2, '0')).join(' ');
    const text = row.map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${i.toString(16).padStart(8, '0')}  ${hexPart.padEnd(47)}  ${text}`);
  }
  return lines.join('\n');
}

// A value shown as text, as JSON pretty-printed (when it is JSON), or as hex.
export function renderValue(message, mode) {
  const data = valueBytes(message);
  if (mode === 'hex') return h('pre', { class: 'value value-hex' }, hex(data));
  const text = message.value ?? new TextDecoder().decode(data);
  if (mode === 'json') {
    try {
      return h('pre', { class: 'value value-json' }, JSON.stringify(JSON.parse(text), null, 2));
    } catch {
      return h('pre', { class: 'value' }, text, h('span', { class: 'muted' }, '  (not JSON)'));
    }
  }
  return h('pre', { class: 'value' }, text);
}

export function headerChips(headers) {
  const entries = Object.entries(headers || {});
  if (!entries.length) return h('span', { class: 'muted' }, 'none');
  return h('div', { class: 'chips' }, entries.map(([k, v]) =>
    h('span', { class: `chip${k.startsWith('x-rustmq-') ? ' chip-system' : ''}`, title: `${k}: ${v}` },
      h('b', {}, k), ' ', v)));
}
