// What the page knows of the lab, kept current from the live stream; views subscribe to changes.
export const store = {
  units: new Map(),       // unit -> unit view (as GET /api/units)
  sessions: new Map(),    // unit -> its latest session (open, closing, or just ended)
  experiment: null,
  events: [],             // newest last, bounded
  series: new Map(),      // "unit/module" -> {t: [], values: Map(name -> [])}
  marks: [],              // {ts, unit, module, label, kind}
  selected: null,
  stats: { firstPointAt: null, points: 0, delays: [], marks: 0, backfilled: 0 },
};

const MAX_EVENTS = 500;
const MAX_MARKS = 500;
const MAX_DELAYS = 5000;
export const LIVE_WINDOW_S = 600;
const listeners = new Map();
window.labedgeStats = store.stats;

export function on(kind, fn) {
  if (!listeners.has(kind)) listeners.set(kind, []);
  listeners.get(kind).push(fn);
}

export function emit(kind, detail) {
  for (const fn of listeners.get(kind) || []) {
    try { fn(detail); } catch (e) { console.error(e); }
  }
}

function moduleOf(unit, name) {
  const view = store.units.get(unit);
  return view ? view.modules.find((m) => m.module === name) : null;
}

function addPoints(msg) {
  const key = `${msg.unit}/${msg.module}`;
  let s = store.series.get(key);
  if (!s) { s = { t: [], values: new Map() }; store.series.set(key, s); }
  const now = Date.now() / 1000;
  for (const [ts, values] of msg.points) {
    if (s.t.length && ts < s.t[s.t.length - 1]) continue; // a re-sent backlog point: history has it
    s.t.push(ts);
    for (const name of Object.keys(values)) {
      if (!s.values.has(name)) s.values.set(name, new Array(s.t.length - 1).fill(null));
    }
    for (const [name, arr] of s.values) arr.push(name in values ? values[name] : null);
    if (!msg.hist) {
      store.stats.points++;
      if (store.stats.firstPointAt === null) store.stats.firstPointAt = performance.now();
      if (store.stats.delays.length < MAX_DELAYS) store.stats.delays.push(now - ts);
    }
  }
  const cutoff = now - LIVE_WINDOW_S;
  let drop = 0;
  while (drop < s.t.length && s.t[drop] < cutoff) drop++;
  if (drop) { s.t.splice(0, drop); for (const arr of s.values.values()) arr.splice(0, drop); }
  const mod = moduleOf(msg.unit, msg.module);
  if (mod && msg.points.length) {
    const [ts, values] = msg.points[msg.points.length - 1];
    Object.assign(mod.last, values);
    mod.last_ts = new Date(ts * 1000).toISOString();
  }
}

function setpointMarks(before, after) {
  const old = (before && before.loops) || {};
  for (const [name, loop] of Object.entries((after && after.loops) || {})) {
    if (loop.setpoint === undefined || loop.setpoint === null) continue;
    if (old[name] && old[name].setpoint !== loop.setpoint) {
      store.marks.push({ ts: Date.now() / 1000, unit: null, module: null, kind: "setpoint",
        label: `${name} setpoint ${loop.setpoint}` });
    }
  }
}

export function handle(msg) {
  switch (msg.type) {
    case "hello":
      store.units = new Map(msg.units.map((u) => [u.unit, u]));
      store.experiment = msg.experiment;
      emit("units"); emit("experiment");
      break;
    case "unit":
      store.units.set(msg.unit.unit, msg.unit);
      emit("units", msg.unit.unit);
      break;
    case "module": {
      const mod = moduleOf(msg.unit, msg.module);
      if (mod) Object.assign(mod, msg.state);
      else if (store.units.has(msg.unit)) {
        store.units.get(msg.unit).modules.push({ module: msg.module, readings: [], commands: {}, ...msg.state });
      }
      emit("units", msg.unit);
      break;
    }
    case "points":
      addPoints(msg);
      emit("points", msg.unit);
      break;
    case "event":
      store.events.push(msg.event);
      if (store.events.length > MAX_EVENTS) store.events.splice(0, store.events.length - MAX_EVENTS);
      emit("events");
      break;
    case "mark":
      store.stats.marks++;
      store.marks.push(msg);
      if (store.marks.length > MAX_MARKS) store.marks.splice(0, store.marks.length - MAX_MARKS);
      emit("points", msg.unit);
      break;
    case "experiment":
      setpointMarks(store.experiment, msg.experiment);
      store.experiment = msg.experiment;
      emit("experiment");
      break;
    case "session":
      store.sessions.set(msg.session.unit, msg.session);
      emit("sessions", msg.session.unit);
      break;
  }
}
