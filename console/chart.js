// A small SVG line chart: a few series over time, gridlines, axis labels and a
// legend. Enough for the pipeline page's throughput and latency; nothing fetched.

import { h } from './format.js';

const NS = 'http://www.w3.org/2000/svg';

function s(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

// A "nice" upper bound for the y axis: 1, 2 or 5 times a power of ten.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

// series: [{ name, tone, points: [[timeMs, value], ...] }] (tone: a, b or c, a colour
// of the style sheet); windowMs: the span shown.
export function lineChart({ title, series, windowMs, format }) {
  const width = 640;
  const height = 220;
  const pad = { left: 56, right: 12, top: 12, bottom: 26 };
  const now = Date.now();
  const t0 = now - windowMs;
  const values = series.flatMap((x) => x.points.filter(([t]) => t >= t0).map(([, v]) => v));
  const yMax = niceMax(Math.max(0, ...values));
  const x = (t) => pad.left + ((t - t0) / windowMs) * (width - pad.left - pad.right);
  const y = (v) => height - pad.bottom - (v / yMax) * (height - pad.top - pad.bottom);

  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart-svg', role: 'img', 'aria-label': title });
  // Ticks at round values: 5 for a bound of 5×10^n, 4 for 1× or 2×.
  const ticks = String(yMax).replace(/[0.]/g, '').startsWith('5') ? 5 : 4;
  for (let i = 0; i <= ticks; i += 1) {
    const v = (yMax * i) / ticks;
    svg.append(s('line', { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v), class: 'grid' }));
    svg.append(s('text', { x: pad.left - 6, y: y(v) + 4, class: 'axis', 'text-anchor': 'end' }, format(v)));
  }
  const minutes = Math.round(windowMs / 60000);
  for (let i = 0; i <= minutes; i += 1) {
    const t = now - i * 60000;
    svg.append(s('text', { x: x(t), y: height - 8, class: 'axis', 'text-anchor': 'middle' }, i === 0 ? 'now' : `-${i}m`));
  }
  for (const line of series) {
    const pts = line.points.filter(([t]) => t >= t0);
    if (pts.length === 0) continue;
    const d = pts.map(([t, v], i) => `${i ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    svg.append(s('path', { d, class: `series tone-${line.tone}` }));
    const [lt, lv] = pts[pts.length - 1];
    svg.append(s('circle', { cx: x(lt), cy: y(lv), r: 3, class: `dot tone-${line.tone}` }));
  }
  const empty = values.length === 0;
  // The highest value drawn, for whoever reads the page without looking at it.
  return h('figure', { class: 'chart', dataset: { peak: String(Math.max(0, ...values)) } },
    h('figcaption', {}, h('span', { class: 'chart-title' }, title),
      h('span', { class: 'legend' }, series.map((line) => {
        const last = line.points[line.points.length - 1];
        return h('span', { class: 'legend-item' },
          h('i', { class: `swatch tone-${line.tone}` }), line.name, ' ',
          h('b', {}, last ? format(last[1]) : '–'));
      }))),
    svg,
    empty ? h('div', { class: 'chart-empty' }, 'Collecting samples…') : null);
}
