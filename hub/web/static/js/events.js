// Events: alarms first, then warnings, then info; newest first within each.
import { get } from "./api.js";
import { store, on } from "./store.js";
import { el, clock } from "./util.js";

const LEVELS = ["alarm", "warning", "info"];
const $ = (id) => document.getElementById(id);
let notify = () => {};
let visible = false;

export function initEvents(notice) {
  notify = notice;
  on("events", () => { count(); if (visible) render(); });
  on("units", fillUnits);
  $("events-unit").addEventListener("change", load);
  $("events-level").addEventListener("change", render);
}

export async function enterEvents() { visible = true; await load(); }
export function leaveEvents() { visible = false; }

function fillUnits() {
  const select = $("events-unit");
  const have = new Set([...select.options].map((o) => o.value));
  for (const unit of store.units.keys()) if (!have.has(unit)) select.append(el("option", {}, unit));
}

function count() {
  const alarms = store.events.filter((e) => e.level === "alarm").length;
  $("alarm-count").hidden = !alarms;
  $("alarm-count").textContent = String(alarms);
}

async function load() {
  const unit = $("events-unit").value;
  try {
    const { events } = await get(`/api/events?limit=500${unit ? `&unit=${unit}` : ""}`);
    const seen = new Set(events.map(key));
    store.events = events.concat(store.events.filter((e) => !seen.has(key(e))));
    count();
    render();
  } catch (e) { notify(`events: ${e.message}`, true); }
}

function key(e) { return `${e.unit}|${e.module}|${e.ts}|${e.code}`; }

function unitOf(e) { return e.unit || (e.data && e.data.unit) || ""; }

function tsOf(e) { return typeof e.ts === "number" ? e.ts : new Date(e.ts).getTime() / 1000; }

function render() {
  const unit = $("events-unit").value;
  const level = $("events-level").value;
  const rows = store.events.filter((e) => (!unit || unitOf(e) === unit) && (!level || e.level === level))
    .sort((a, b) => (LEVELS.indexOf(a.level) - LEVELS.indexOf(b.level)) || (tsOf(b) - tsOf(a)))
    .slice(0, 500)
    .map((e) => el("tr", { class: e.level, "data-level": e.level },
      el("td", {}, e.level), el("td", {}, clock(e.ts_utc || new Date(tsOf(e) * 1000).toISOString())),
      el("td", {}, unitOf(e)), el("td", {}, e.module || ""), el("td", {}, e.source || ""),
      el("td", {}, e.code), el("td", {}, e.message)));
  $("events").querySelector("tbody").replaceChildren(...rows);
}
