// The dashboard: sign in, then the lab (units, charts, sessions), the experiment and the events.
import { get, post, setCsrf } from "./api.js";
import { startLive, select } from "./live.js";
import { store, on, emit } from "./store.js";
import { initUnits } from "./units.js";
import { initCharts, setMode } from "./charts.js";
import { initCommands } from "./commands.js";
import { initSessions } from "./sessions.js";
import { initExperiment, enterExperiment } from "./experiment.js";
import { initEvents, enterEvents, leaveEvents } from "./events.js";
import { initProcesses } from "./processes.js";

const $ = (id) => document.getElementById(id);
let noticeTimer = null;

function notice(text, error = false) {
  const node = $("notice");
  node.textContent = text;
  node.className = error ? "error" : "";
  node.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { node.hidden = true; }, error ? 10000 : 5000);
}

function showLogin(message = "") {
  for (const id of ["lab-view", "experiment-view", "events-view", "nav", "logout", "estop-all"]) $(id).hidden = true;
  $("login-view").hidden = false;
  $("login-error").textContent = message;
  $("login-user").focus();
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await post("/api/login", { username: $("login-user").value, password: $("login-password").value });
    $("login-password").value = "";
    location.reload(); // a clean start with the new session cookie
  } catch (e) {
    $("login-error").textContent = e.message;
  }
});

function route() {
  const view = (location.hash || "#lab").slice(1);
  for (const name of ["lab", "experiment", "events"]) {
    $(`${name}-view`).hidden = name !== view;
    document.querySelector(`#nav a[data-view=${name}]`).classList.toggle("active", name === view);
  }
  if (view === "experiment") enterExperiment();
  if (view === "events") enterEvents(); else leaveEvents();
}

function linkStatus(text) {
  const node = $("link");
  node.textContent = text;
  node.className = `pill ${text === "live" ? "online" : "lost"}`;
}

async function start() {
  let me;
  try { me = await get("/api/me"); } catch (e) { showLogin(); return; }
  setCsrf(me.csrf_token);
  const operator = me.role === "operator";
  $("who").textContent = `${me.user} (${me.role})`;
  for (const id of ["nav", "logout", "estop-all"]) $(id).hidden = false;
  $("logout").addEventListener("click", async () => {
    try { await post("/api/logout"); } finally { location.reload(); }
  });
  $("estop-all").addEventListener("click", async () => {
    try {
      const { units } = await post("/api/estop");
      const failed = units.filter((u) => u.status !== "done");
      notice(failed.length ? `ESTOP sent; no confirmation from ${failed.map((u) => u.unit).join(", ")}`
        : `ESTOP: every unit confirmed (${units.length})`, failed.length > 0);
    } catch (e) { notice(`ESTOP: ${e.message}`, true); }
  });
  initUnits($("units"), notice, operator);
  initCharts($("charts"), $("charts-title"), notice);
  initCommands($("command"), operator);
  initSessions($("sessions"));
  initExperiment(notice, operator);
  initEvents(notice);
  initProcesses($("processes-panel"));
  $("range-live").addEventListener("click", () => range("live"));
  $("range-session").addEventListener("click", () => range("session"));
  on("select", (unit) => select(unit));
  on("experiment", () => { $("hub-name").textContent = store.experiment?.hub || ""; });
  window.addEventListener("hashchange", route);
  route();
  startLive(linkStatus, () => showLogin("Your session ended; sign in again."));
  emit("units");
}

function range(mode) {
  $("range-live").classList.toggle("on", mode === "live");
  $("range-session").classList.toggle("on", mode === "session");
  setMode(mode);
}

start();
