// The processes panel: what the supervisord the hub runs under says of each process (state, uptime).
import { get } from "./api.js";
import { el } from "./util.js";

const EVERY_MS = 5000;
let root = null;

export function initProcesses(node) {
  root = node;
  load();
  setInterval(load, EVERY_MS);
}

function uptime(s) {
  if (s === null || s === undefined) return "";
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return d ? `${d} d ${h} h` : h ? `${h} h ${m} min` : m ? `${m} min ${s % 60} s` : `${s} s`;
}

const COLOUR = { RUNNING: "ok", STARTING: "warn", STOPPING: "warn", BACKOFF: "bad", FATAL: "bad",
  EXITED: "bad", STOPPED: "unknown", UNKNOWN: "unknown" };

async function load() {
  const message = root.querySelector(".processes-message");
  const body = root.querySelector("tbody");
  let result;
  try { result = await get("/api/processes"); } catch (e) { message.textContent = e.message; return; }
  root.dataset.supervisor = result.supervisor ? "yes" : "no";
  message.textContent = result.message || `supervisord at ${result.supervisor}`;
  body.replaceChildren(...result.processes.map((p) => el("tr", { "data-process": p.name, "data-state": p.state },
    el("td", {}, p.name), el("td", {}, el("span", { class: `pill ${COLOUR[p.state] || "unknown"}` }, p.state)),
    el("td", { class: "uptime" }, p.state === "RUNNING" ? uptime(p.uptime_s) : p.description))));
}
