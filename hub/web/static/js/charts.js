// Live charts of the selected unit: one per module with readings, the last 10 minutes from the live
// stream, or the whole session from history. Units and ranges come from $birth; pump and heater
// switches, setpoint changes and script events are marked on the time axis.
import { get } from "./api.js";
import { store, on, LIVE_WINDOW_S } from "./store.js";
import { el } from "./util.js";

const COLORS = ["#1565c0", "#c62828", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f"];
const MARK_COLORS = { output: "#b45309", script: "#6a1b9a", setpoint: "#2e7d32" };
let root = null;
let title = null;
let notify = () => {};
let mode = "live";
let charts = new Map(); // module -> {plot, names, node}
let dirty = false;

export function initCharts(node, heading, notice) {
  root = node;
  title = heading;
  notify = notice;
  on("select", () => build());
  on("units", (unit) => { if (!unit || unit === store.selected) maybeRebuild(); });
  on("points", (unit) => { if (unit === store.selected || unit === null) dirty = true; });
  setInterval(() => { if (dirty && mode === "live") { dirty = false; redraw(); } }, 500);
  window.addEventListener("resize", () => build());
}

export async function setMode(next) {
  mode = next;
  build();
  if (mode === "session") await loadHistory();
}

function modulesWithReadings() {
  const unit = store.units.get(store.selected);
  return unit ? unit.modules.filter((m) => (m.readings || []).length) : [];
}

function shape() {
  return modulesWithReadings().map((m) => `${m.module}:${m.readings.map((r) => r.name).join(",")}`).join(";");
}

let builtShape = "";
function maybeRebuild() { if (shape() !== builtShape) build(); }

function range(spec) {
  return (u, min, max) => {
    if (min === null || max === null || !isFinite(min)) return [spec.lo ?? 0, spec.hi ?? 1];
    const pad = (max - min) * 0.1 || Math.abs(max) * 0.05 || 1;
    let lo = min - pad, hi = max + pad;
    if (spec.lo !== null && spec.lo !== undefined) lo = Math.max(lo, spec.lo);
    if (spec.hi !== null && spec.hi !== undefined) hi = Math.min(hi, spec.hi);
    return hi > lo ? [lo, hi] : [min - 1, max + 1];
  };
}

function marksPlugin(unit) {
  return { hooks: { draw: [(u) => {
    const ctx = u.ctx;
    const [x0, x1] = [u.scales.x.min, u.scales.x.max];
    ctx.save();
    ctx.font = `${11 * devicePixelRatio}px system-ui`;
    let labelledTo = -Infinity; // labels that would overlap are left out (the line stays)
    for (const mark of store.marks) {
      if (mark.unit && mark.unit !== unit) continue;
      if (mark.ts < x0 || mark.ts > x1) continue;
      const x = u.valToPos(mark.ts, "x", true);
      ctx.strokeStyle = ctx.fillStyle = MARK_COLORS[mark.kind] || "#555";
      ctx.setLineDash([4, 3]);
      ctx.beginPath();
      ctx.moveTo(x, u.bbox.top);
      ctx.lineTo(x, u.bbox.top + u.bbox.height);
      ctx.stroke();
      if (x > labelledTo) {
        const label = mark.label.slice(0, 40);
        ctx.fillText(label, x + 3, u.bbox.top + 12 * devicePixelRatio);
        labelledTo = x + ctx.measureText(label).width + 8;
      }
    }
    ctx.restore();
  }] } };
}

function build() {
  for (const chart of charts.values()) chart.plot.destroy();
  charts = new Map();
  builtShape = shape();
  const unit = store.selected;
  title.textContent = unit ? `Readings of ${unit}` : "Readings";
  const columns = (root.clientWidth || 900) >= 1000 ? 2 : 1;
  const width = Math.max(300, Math.floor((root.clientWidth || 900) / columns) - 16);
  root.style.gridTemplateColumns = `repeat(${columns}, 1fr)`;
  const nodes = modulesWithReadings().map((mod) => {
    const node = el("div", { class: "chart", "data-chart": mod.module, "data-points": "0" },
      el("h3", {}, mod.module));
    const units = [...new Set(mod.readings.map((r) => r.unit || ""))];
    const scales = { x: { time: true } };
    const series = [{}];
    mod.readings.forEach((r, i) => {
      const scale = `y${units.indexOf(r.unit || "")}`;
      if (!scales[scale]) scales[scale] = { range: range({ lo: r.range?.[0] ?? r.min, hi: r.range?.[1] ?? r.max }) };
      series.push({ label: r.unit ? `${r.name} (${r.unit})` : r.name, scale, stroke: COLORS[i % COLORS.length],
        width: 1.5, spanGaps: true, points: { show: false } });
    });
    const axes = [{}, ...units.slice(0, 2).map((name, i) => ({ scale: `y${i}`, label: name,
      side: i ? 1 : 3, grid: { show: i === 0 } }))];
    const plot = new uPlot({ width, height: 200, scales, series, axes, plugins: [marksPlugin(unit)],
      legend: { live: true } }, [[], ...mod.readings.map(() => [])], node);
    charts.set(mod.module, { plot, names: mod.readings.map((r) => r.name), node });
    return node;
  });
  root.replaceChildren(...(nodes.length ? nodes
    : [el("p", { class: "since" }, unit ? `${unit} has no readings to chart.` : "Select a unit.")]));
  if (mode === "live") { redraw(); backfill(unit); }
}

const filled = new Set(); // "unit/module": the last 10 minutes were read from history once

// The last 10 minutes from the recorder, before the first live point: a page opened (or a unit
// selected) mid-run shows the whole window at once, and the live points carry on from there.
async function backfill(unit) {
  const end = Date.now() / 1000;
  for (const mod of modulesWithReadings()) {
    const key = `${unit}/${mod.module}`;
    if (filled.has(key)) continue;
    filled.add(key);
    const names = mod.readings.map((r) => r.name);
    try {
      const columns = await Promise.all(names.map((reading) => get(
        `/api/history?unit=${unit}&module=${mod.module}&reading=${encodeURIComponent(reading)}` +
        `&start=${end - LIVE_WINDOW_S}&end=${end}&points=${LIVE_WINDOW_S}`)));
      prepend(key, names, columns);
      store.stats.backfilled++;
    } catch (e) {
      filled.delete(key);
    }
  }
  if (unit === store.selected && mode === "live") redraw();
}

function prepend(key, names, columns) {
  let s = store.series.get(key);
  if (!s) { s = { t: [], values: new Map() }; store.series.set(key, s); }
  const before = s.t.length ? s.t[0] : Infinity;
  const times = [...new Set(columns.flatMap((c) => c.buckets.map((b) => b[0])))]
    .filter((t) => t < before).sort((a, b) => a - b);
  if (!times.length) return;
  names.forEach((name, i) => {
    const byTs = new Map(columns[i].buckets.map((b) => [b[0], b[3]]));
    const old = s.values.get(name) || new Array(s.t.length).fill(null);
    s.values.set(name, times.map((t) => (byTs.has(t) ? byTs.get(t) : null)).concat(old));
  });
  for (const [name, arr] of s.values) {
    if (!names.includes(name)) s.values.set(name, new Array(times.length).fill(null).concat(arr));
  }
  s.t = times.concat(s.t);
}

function redraw() {
  const now = Date.now() / 1000;
  for (const [module, chart] of charts) {
    const s = store.series.get(`${store.selected}/${module}`);
    const data = [s ? s.t : [], ...chart.names.map((n) => (s && s.values.get(n)) || [])];
    chart.plot.setData(data, false);
    // A series younger than the window is shown from its first point, so its line is visible.
    const first = data[0].length ? data[0][0] - 10 : now - 60;
    chart.plot.setScale("x", { min: Math.max(now - LIVE_WINDOW_S, Math.min(first, now - 60)), max: now });
    chart.node.dataset.points = String(data[0].length);
  }
}

function sessionStart() {
  const session = store.sessions.get(store.selected);
  if (session && session.started_at) return new Date(session.started_at).getTime() / 1000;
  const xp = store.experiment;
  if (xp && xp.started_at) return new Date(xp.started_at).getTime() / 1000;
  return Date.now() / 1000 - 3600;
}

async function loadHistory() {
  const unit = store.selected;
  const start = sessionStart();
  const end = Date.now() / 1000 + 1;
  try {
    for (const [module, chart] of charts) {
      const columns = await Promise.all(chart.names.map((reading) => get(
        `/api/history?unit=${unit}&module=${module}&reading=${encodeURIComponent(reading)}` +
        `&start=${start}&end=${end}&points=600`)));
      const times = [...new Set(columns.flatMap((c) => c.buckets.map((b) => b[0])))].sort((a, b) => a - b);
      const data = [times, ...columns.map((c) => {
        const byTs = new Map(c.buckets.map((b) => [b[0], b[3]]));
        return times.map((t) => (byTs.has(t) ? byTs.get(t) : null));
      })];
      chart.plot.setData(data, false);
      chart.plot.setScale("x", { min: start, max: end });
      chart.node.dataset.points = String(times.length);
    }
  } catch (e) {
    notify(`history: ${e.message}`, true);
  }
}
