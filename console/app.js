// The console's shell: connects (asking for the admin token when the API wants one),
// polls the broker every two seconds, and routes #/… to the views.

import { admin, messages, ApiError, setToken, hasToken, setMessagesAddr } from './api.js';
import { h, clear, duration, bytes } from './format.js';
import * as overview from './views/overview.js';
import * as pipeline from './views/pipeline.js';
import * as modules from './views/modules.js';
import * as topics from './views/topics.js';

const POLL_MS = 2000;
// What the charts show: the last five minutes.
export const WINDOW_MS = 5 * 60 * 1000;

const routes = [
  { pattern: /^#?\/?$/, view: overview, section: 'overview' },
  { pattern: /^#\/pipelines\/([^/]+)$/, view: pipeline, section: 'overview' },
  { pattern: /^#\/modules$/, view: modules, section: 'modules' },
  { pattern: /^#\/topics(?:\/([^/]+))?$/, view: topics, section: 'topics' },
];

// What every view reads: the latest poll, and each pipeline's rate over the last one.
const snapshot = { status: null, metrics: null, pipelines: [], topics: [], at: 0 };
const last = new Map();
const rates = new Map();

let current = null;

function record(metrics, at) {
  for (const [id, m] of Object.entries(metrics.pipelines || {})) {
    const prev = last.get(id);
    if (prev && at > prev.t && m.messages_processed >= prev.processed) {
      rates.set(id, ((m.messages_processed - prev.processed) * 1000) / (at - prev.t));
    }
    last.set(id, { t: at, processed: m.messages_processed });
  }
}

// The throughput of a pipeline over the last poll, or null before two polls.
export function lastRate(id) {
  return rates.has(id) ? rates.get(id) : null;
}

async function poll() {
  const at = Date.now();
  const [status, metrics, pipelineList, topicList] = await Promise.all([
    admin.get('/api/v1/status'),
    admin.get('/api/v1/metrics'),
    admin.get('/api/v1/etl/pipelines'),
    messages.get('/api/v1/topics').catch((e) => ({ topics: [], error: e })),
  ]);
  Object.assign(snapshot, {
    status,
    metrics,
    pipelines: pipelineList.pipelines,
    topics: topicList.topics,
    topicsError: topicList.error || null,
    at,
  });
  record(metrics, at);
  renderBroker();
}

function renderBroker() {
  const { status } = snapshot;
  const storage = status.storage;
  clear(document.getElementById('broker'),
    h('span', { class: `dot-status ${storage.writable ? 'ok' : 'bad'}`, title: storage.writable ? 'storage writable' : `storage: ${storage.fault || 'not writable'}` }),
    h('span', {}, `v${status.version}`),
    h('span', { class: 'muted' }, `up ${duration(status.uptime_secs)}`),
    h('span', { class: 'muted' }, `${bytes(storage.size_bytes)} stored`),
    hasToken() ? h('button', { class: 'link', onclick: signOut }, 'Sign out') : null);
}

function signOut() {
  setToken(null);
  location.reload();
}

function banner(text) {
  const node = document.getElementById('banner');
  node.hidden = !text;
  node.textContent = text || '';
}

// Shows the token prompt and resolves with what was entered.
function askToken(refused) {
  const dialog = document.getElementById('token-dialog');
  const input = document.getElementById('token-input');
  document.getElementById('token-error').hidden = !refused;
  input.value = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(input.value), { once: true });
    dialog.showModal();
    input.focus();
  });
}

// Polls until the broker answers; a 401 asks for the token (again, saying it was
// refused, when one was sent).
async function connect() {
  for (;;) {
    try {
      const status = await admin.get('/api/v1/status');
      setMessagesAddr(status.messages_addr);
      await poll();
      banner(null);
      return;
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        setToken(await askToken(hasToken()));
        continue;
      }
      banner(`The broker is not answering (${e.message}); retrying…`);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }
}

export function toast(text, tone = 'ok') {
  const node = h('div', { class: `toast toast-${tone}`, role: 'status' }, text);
  document.getElementById('toasts').append(node);
  setTimeout(() => node.remove(), 6000);
}

// A confirmation dialog; resolves true when confirmed.
export function confirmAction(title, text, okLabel) {
  const dialog = document.getElementById('confirm-dialog');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-ok').textContent = okLabel;
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.returnValue = '';
    dialog.showModal();
  });
}

// Runs an action of a view, then refreshes at once; a failure is shown as the API gave it.
export async function act(label, fn) {
  try {
    const result = await fn();
    await refresh();
    return result;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      await connect();
      return undefined;
    }
    toast(`${label}: ${e.code ? `${e.code}: ` : ''}${e.message}`, 'bad');
    return undefined;
  }
}

const ctx = { snapshot, lastRate, toast, confirmAction, act, WINDOW_MS };

function route() {
  const hash = location.hash || '#/';
  for (const r of routes) {
    const m = hash.match(r.pattern);
    if (m) return { ...r, params: m.slice(1).map((p) => (p === undefined ? p : decodeURIComponent(p))) };
  }
  return { ...routes[0], params: [] };
}

async function show() {
  const r = route();
  for (const a of document.querySelectorAll('.nav a')) {
    a.classList.toggle('active', a.dataset.section === r.section);
  }
  if (current && current.view.unmount) current.view.unmount();
  const root = clear(document.getElementById('view'));
  current = { view: r.view, root };
  await r.view.mount(root, r.params, ctx);
  if (current && current.root === root) await r.view.update(ctx);
}

export async function refresh() {
  try {
    await poll();
    banner(null);
    if (current) await current.view.update(ctx);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      await connect();
    } else {
      banner(`The broker is not answering (${e.message}); retrying…`);
    }
  }
}

async function start() {
  await connect();
  window.addEventListener('hashchange', show);
  await show();
  const tick = async () => {
    await refresh();
    setTimeout(tick, POLL_MS);
  };
  setTimeout(tick, POLL_MS);
  document.body.dataset.ready = 'true';
}

start();
