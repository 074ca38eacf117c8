// Modules: every name and version with its kind, world or ABI, size, blake3 and the
// pipelines pinned to it; and an upload form that sends a .wasm as the API takes it.

import { admin } from '../api.js';
import { h, clear, bytes, time, errorBox } from '../format.js';

let view = null;

export function mount(root, _params, ctx) {
  const name = h('input', { name: 'name', id: 'upload-name', required: true, placeholder: 'message-processor', pattern: '[A-Za-z0-9._\\-]+', title: 'letters, digits, dot, underscore and hyphen' });
  const version = h('input', { name: 'version', id: 'upload-version', required: true, placeholder: '1.0.0' });
  const file = h('input', { name: 'file', id: 'upload-file', type: 'file', accept: '.wasm,application/wasm', required: true });
  const result = h('div', { id: 'upload-result' });
  const form = h('form', { class: 'form-grid', id: 'upload-form', onsubmit: (e) => upload(e, ctx) },
    h('label', {}, 'Name', name),
    h('label', {}, 'Version', version),
    h('label', { class: 'wide' }, 'Module (.wasm)', file),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Upload')));
  view = { list: h('div', { class: 'panel-body' }), form, name, version, file, result, key: null };
  file.addEventListener('change', () => {
    // A file named like `<name>-<version>.wasm` or `<name>.wasm` fills what is empty.
    const f = file.files[0];
    if (!f) return;
    const stem = f.name.replace(/\.wasm$/, '').replace(/_/g, '-');
    const m = stem.match(/^(.*?)-v?(\d+\.\d+\.\d+(?:[-+][\w.]+)?)$/);
    if (!name.value) name.value = m ? m[1] : stem;
    if (!version.value && m) version.value = m[2];
  });
  root.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Modules')),
    h('section', { class: 'panel' },
      h('header', { class: 'panel-head' }, h('h2', {}, 'Upload a module')),
      h('div', { class: 'panel-body' },
        h('p', { class: 'muted' }, 'A component (rustmq:etl world) or a legacy core module. A name and version are uploaded once; upload a new version to change a module.'),
        form, result)),
    h('section', { class: 'panel' },
      h('header', { class: 'panel-head' }, h('h2', {}, 'Uploaded')),
      view.list));
}

export function unmount() {
  view = null;
}

async function upload(event, ctx) {
  event.preventDefault();
  const { name, version, file, result } = view;
  const f = file.files[0];
  clear(result);
  try {
    const record = await admin.post('/api/v1/etl/modules', {
      body: await f.arrayBuffer(),
      headers: {
        'Content-Type': 'application/octet-stream',
        'X-Module-Name': name.value.trim(),
        'X-Module-Version': version.value.trim(),
      },
    });
    clear(result, h('div', { class: 'callout callout-ok', role: 'status' },
      'Uploaded ', h('strong', {}, record.module_id), ` (${record.kind}, ${bytes(record.size_bytes)})`,
      record.warnings && record.warnings.length ? h('ul', {}, record.warnings.map((w) => h('li', {}, w))) : null));
    view.form.reset();
    view.key = null;
    await ctx.act('Refreshing', async () => {});
  } catch (e) {
    clear(result, errorBox(e));
  }
}

export async function update() {
  if (!view) return;
  const list = await admin.get('/api/v1/etl/modules');
  if (!view) return;
  const key = JSON.stringify(list.modules.map((m) => [m.module_id, m.pinned_by]));
  if (key === view.key) return;
  view.key = key;
  if (list.modules.length === 0) {
    clear(view.list, h('p', { class: 'empty' }, 'No modules yet: upload one above, or with rustmq-etl module upload.'));
    return;
  }
  const sorted = list.modules.slice().sort((a, b) => a.name.localeCompare(b.name) || b.uploaded_at_ms - a.uploaded_at_ms);
  clear(view.list, h('table', { class: 'table', id: 'module-table' },
    h('thead', {}, h('tr', {}, ['Module', 'Version', 'Kind', 'World / ABI', 'Size', 'blake3', 'Uploaded', 'Pinned by']
      .map((c, i) => h('th', { class: i === 4 ? 'num' : null }, c)))),
    h('tbody', {}, sorted.map((m) => {
      const hash = (m.hash || '').replace(/^blake3:/, '');
      return h('tr', { dataset: { module: m.module_id } },
        h('td', {}, h('strong', {}, m.name)),
        h('td', { class: 'version-cell' }, m.version),
        h('td', {}, h('span', { class: `badge ${m.kind === 'legacy' ? 'badge-warn' : 'badge-info'}` }, m.kind)),
        h('td', { class: 'mono small' }, m.world || m.abi || '–'),
        h('td', { class: 'num' }, bytes(m.size_bytes)),
        h('td', { class: 'mono small', title: m.hash }, `${hash.slice(0, 12)}…`),
        h('td', { class: 'muted' }, time(m.uploaded_at_ms)),
        h('td', {}, m.pinned_by && m.pinned_by.length
          ? m.pinned_by.map((id, i) => [i ? ', ' : '', h('a', { href: `#/pipelines/${encodeURIComponent(id)}` }, id)])
          : h('span', { class: 'muted' }, 'none')));
    }))));
}
