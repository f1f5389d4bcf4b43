// The unit cards: presence and since when, every module's LECIS state in colour, outputs, last readings,
// the open session, ESTOP/CLEAR per unit.
import { post } from "./api.js";
import { store, on, emit } from "./store.js";
import { el, clock, ago, bytes, number } from "./util.js";

let root = null;
let notify = () => {};
let operator = false;
let pending = false;

export function initUnits(node, notice, isOperator) {
  root = node;
  notify = notice;
  operator = isOperator;
  on("units", schedule);
  on("sessions", schedule);
  setInterval(() => tick(), 1000); // elapsed times, in place
  setInterval(schedule, 2000); // last readings (cards whose values changed are rebuilt)
}

function schedule() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => { pending = false; render(); });
}

async function act(label, fn) {
  try { await fn(); } catch (e) { notify(`${label}: ${e.message}`, true); }
}

function outputs(mod) {
  return Object.entries(mod.outputs || {}).filter(([, value]) => typeof value !== "string" && value !== null)
    .map(([name, value]) => {
      const onNow = value === true || (typeof value === "number" && value > 0);
      const state = typeof value === "boolean" ? (value ? "ON" : "off") : number(value);
      const text = name === "on" ? state : `${name} ${state}`;
      const since = mod.outputs[`${name}_since`];
      return el("span", { class: `out ${onNow ? "on" : "off"}`, title: since ? `${name} since ${since}` : name }, text);
    });
}

function readings(mod) {
  const units = Object.fromEntries((mod.readings || []).map((r) => [r.name, r.unit]));
  return Object.entries(mod.last || {}).map(([name, value]) =>
    el("span", { class: "reading" }, `${name} ${number(value)} ${units[name] || ""}`));
}

function sessionLine(unit) {
  const s = store.sessions.get(unit.unit);
  const line = el("div", { class: "session-line", "data-session": s ? s.state : "none" });
  if (s && s.state === "open") {
    const up = s.upload || {};
    const total = (up.bytes_done || 0) + (up.bytes_pending || 0);
    line.append(el("span", { class: "pill ok" }, "session open"),
      el("span", { class: "elapsed", "data-ago": s.started_at, "data-prefix": "{ago}" }, ago(s.started_at)),
      el("progress", { max: total || 1, value: up.bytes_done || 0, title: "uploaded so far" }),
      el("span", { class: "since" }, `${bytes(up.bytes_done || 0)} / ${bytes(total)}`));
    if (operator) {
      line.append(el("button", { type: "button", class: "session-stop", onclick: (e) => {
        e.stopPropagation();
        act("stop session", () => post(`/api/sessions/${s.id}/stop`).then(refresh));
      } }, "Stop session"));
    }
  } else {
    if (s && s.state === "closing") line.append(el("span", { class: "pill warn" }, "closing: final upload"));
    if (operator && !(s && s.state === "closing")) {
      line.append(el("button", { type: "button", class: "session-start", onclick: (e) => {
        e.stopPropagation();
        act("start session", () => post("/api/sessions", { unit: unit.unit }).then(refresh));
      } }, "Start session"));
    }
  }
  return line;
}

function refresh(session) {
  if (session && session.unit) { store.sessions.set(session.unit, session); emit("sessions", session.unit); }
}

function card(unit) {
  const presence = unit.presence || "unknown";
  const online = presence === "ready";
  const rows = unit.modules.map((mod) => el("tr", { "data-module": mod.module },
    el("td", {}, el("b", {}, mod.module), el("div", { class: "since" }, mod.kind || "")),
    el("td", {}, el("span", { class: `lecis lecis-${mod.lecis}`, "data-lecis": mod.lecis || "" },
      mod.lecis || "?"), mod.control === "LOCAL" ? el("div", { class: "since" }, "LOCAL") : null,
      mod.error ? el("div", { class: "error" }, mod.error.message) : null),
    el("td", {}, outputs(mod), readings(mod))));
  const actions = el("div", { class: "unit-actions" },
    el("button", { type: "button", class: "estop unit-estop", onclick: (e) => {
      e.stopPropagation();
      act(`ESTOP ${unit.unit}`, () => post(`/api/units/${unit.unit}/estop`));
    } }, `ESTOP ${unit.unit}`),
    operator ? el("button", { type: "button", class: "unit-clear", onclick: (e) => {
      e.stopPropagation();
      act(`CLEAR ${unit.unit}`, () => post(`/api/units/${unit.unit}/clear`));
    } }, "CLEAR") : null);
  return el("article", {
    class: `unit ${presence} ${store.selected === unit.unit ? "selected" : ""}`,
    "data-unit": unit.unit, "data-presence": presence,
    onclick: () => { store.selected = unit.unit; emit("select", unit.unit); schedule(); },
  },
  el("div", { class: "unit-head" }, el("h2", {}, unit.unit),
    el("span", { class: `pill ${online ? "online" : presence}` },
      online ? "online" : presence === "unknown" ? "not seen yet" : presence),
    unit.since ? el("span", { class: "since", title: unit.since, "data-ago": unit.since,
      "data-prefix": `since ${clock(unit.since)} ({ago})` }, "")
      : presence === "lost" ? el("span", { class: "since" }, "since before the hub started") : null),
  sessionLine(unit),
  el("table", {}, el("tbody", {}, rows)),
  actions);
}

const cards = new Map(); // unit -> {key, node}: a card is rebuilt only when what it shows changed

function tick() {
  for (const node of root.querySelectorAll("[data-ago]")) {
    const prefix = node.dataset.prefix || "";
    node.textContent = prefix.replace("{ago}", ago(node.dataset.ago));
  }
}

function render() {
  const units = [...store.units.values()].sort((a, b) => a.unit.localeCompare(b.unit));
  if (!store.selected && units.length) { store.selected = units[0].unit; emit("select", store.selected); }
  if (!units.length) {
    root.replaceChildren(el("p", { class: "since" }, "No unit has been heard from yet."));
    cards.clear();
    return;
  }
  const nodes = units.map((unit) => {
    const key = JSON.stringify([unit, store.sessions.get(unit.unit) || null, store.selected === unit.unit]);
    let entry = cards.get(unit.unit);
    if (!entry || entry.key !== key) {
      entry = { key, node: card(unit) };
      cards.set(unit.unit, entry);
    }
    return entry.node;
  });
  const same = nodes.length === root.children.length && nodes.every((n, i) => root.children[i] === n);
  if (!same) root.replaceChildren(...nodes);
  tick();
}
