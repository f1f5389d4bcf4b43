// The experiment: state, guards, next tasks, pause/resume/stop; the script editor validated as you type
// (errors marked at their line), apply, versions and their diffs.
import { get, post, put } from "./api.js";
import { store, on } from "./store.js";
import { el, clock } from "./util.js";

const $ = (id) => document.getElementById(id);
let notify = () => {};
let timer = null;
let seq = 0;
let loadedVersion = null;

export function initExperiment(notice, isOperator) {
  notify = notice;
  on("experiment", render);
  const editor = $("script");
  editor.addEventListener("input", () => { gutter(); schedule(); });
  editor.addEventListener("scroll", () => { $("gutter").scrollTop = editor.scrollTop; });
  $("script-reload").addEventListener("click", load);
  $("xp-pause").addEventListener("click", () => control("pause"));
  $("xp-resume").addEventListener("click", () => control("resume"));
  $("xp-stop").addEventListener("click", () => {
    if (confirm("Stop the run? Every output goes to its safe value.")) control("stop");
  });
  $("script-apply").addEventListener("click", apply);
  for (const id of ["xp-pause", "xp-resume", "xp-stop", "script-apply"]) $(id).hidden = !isOperator;
}

export async function enterExperiment() {
  if (loadedVersion === null) await load();
  await versions();
}

async function control(what) {
  try { store.experiment = { ...store.experiment, ...(await post(`/api/experiment/${what}`)) }; render(); }
  catch (e) { notify(`${what}: ${e.message}`, true); }
}

function render() {
  const xp = store.experiment || {};
  $("xp-title").textContent = xp.experiment ? `Experiment: ${xp.experiment}` : "Experiment";
  const state = $("xp-state");
  state.textContent = xp.has_script === false ? "no script" : xp.state || "-";
  state.className = `pill ${{ running: "ok", held: "warn", paused: "warn", stopped: "bad" }[xp.state] || "unknown"}`;
  $("xp-meta").textContent = xp.run_id
    ? `run ${xp.run_id} · version ${xp.script_version} · ${Math.round(xp.elapsed_s || 0)} s` : "";
  const guards = xp.guards || [];
  $("xp-guards").replaceChildren(el("h3", {}, "Guards holding"), guards.length
    ? el("ul", {}, guards.map((g) => el("li", { class: "error" }, `${g.guard}: ${g.reason}`)))
    : el("p", { class: "since" }, "none: the script runs freely"));
  const loops = Object.entries(xp.loops || {});
  const fmt = (v) => (typeof v === "number" ? v.toFixed(2) : v === null || v === undefined ? "-" : String(v));
  $("xp-loops").replaceChildren(el("h3", {}, "Loops"), loops.length
    ? el("ul", {}, loops.map(([name, lp]) => el("li", { "data-loop": name }, lp.kind === "pid"
      ? `${name}: input ${fmt(lp.input)}, setpoint ${fmt(lp.setpoint)}, output ${fmt(lp.output)}`
      : `${name}: input ${fmt(lp.input)}, output ${lp.on ? "ON" : "off"}`)))
    : el("p", { class: "since" }, "no loop"));
  const running = Boolean(xp.run_id) && !["stopped", "finished", "waiting_for_units", "starting"].includes(xp.state);
  $("xp-pause").disabled = !running || xp.state === "paused";
  $("xp-resume").disabled = !running || xp.state !== "paused";
  $("xp-stop").disabled = !running;
  const due = xp.next_due || [];
  $("xp-next").replaceChildren(el("h3", {}, "Next tasks"), due.length
    ? el("ul", {}, due.map((d) => el("li", {}, `${d.task} at ${clock(d.due)}${d.running ? " (running)" : ""}`)))
    : el("p", { class: "since" }, "nothing due"));
  if (xp.script_version && loadedVersion !== null && xp.script_version !== loadedVersion) versions();
}

async function load() {
  try {
    const script = await get("/api/experiment/script");
    $("script").value = script.text;
    loadedVersion = script.version;
    $("script-version").textContent = `(running version ${script.version}, ${script.source})`;
    gutter();
    marks([]);
    $("validation").textContent = "running version";
    $("validation").className = "pill ok";
  } catch (e) {
    $("script-version").textContent = e.status === 409 ? "(no script on this hub)" : "";
    if (e.status !== 409) notify(`script: ${e.message}`, true);
  }
}

function gutter(problems = null) {
  const lines = $("script").value.split("\n").length;
  const bad = new Map();
  for (const p of problems || []) if (p.line) bad.set(p.line, (bad.get(p.line) || []).concat(p.message));
  const spans = [];
  for (let i = 1; i <= lines; i++) {
    spans.push(el("span", { "data-line": i, class: bad.has(i) ? "err" : null,
      title: bad.has(i) ? bad.get(i).join("\n") : null }, i));
  }
  $("gutter").replaceChildren(...spans);
}

function marks(problems) {
  gutter(problems);
  $("problems").replaceChildren(...problems.map((p) => el("li", { "data-line": p.line || "" },
    p.line ? `line ${p.line}${p.column ? `, column ${p.column}` : ""}: ${p.message}` : p.message)));
}

function schedule() {
  clearTimeout(timer);
  $("validation").textContent = "checking...";
  $("validation").className = "pill unknown";
  timer = setTimeout(validate, 300);
}

async function validate() {
  const mine = ++seq;
  try {
    const result = await post("/api/experiment/validate", { text: $("script").value, source: "script" });
    if (mine !== seq) return; // an older answer; a newer check is on its way
    marks(result.problems);
    $("validation").textContent = result.ok ? "valid" : `${result.problems.length} problem(s)`;
    $("validation").className = `pill ${result.ok ? "ok" : "bad"}`;
  } catch (e) {
    if (mine === seq) { $("validation").textContent = e.message; $("validation").className = "pill bad"; }
    if (mine === seq && e.status === 429) { clearTimeout(timer); timer = setTimeout(validate, 1000); } // busy: again
  }
}

async function apply() {
  try {
    const result = await put("/api/experiment/script", { text: $("script").value, source: "dashboard" });
    notify(`version ${result.running_version} applied; it takes effect at the next task boundary`);
    loadedVersion = result.running_version;
    $("script-version").textContent = `(running version ${result.running_version})`;
    marks([]);
    await versions();
  } catch (e) {
    if (e.body && e.body.problems) marks(e.body.problems);
    notify(`not applied: ${e.message}`, true);
  }
}

async function versions() {
  try {
    const { versions: list } = await get("/api/experiment/versions");
    $("versions").replaceChildren(...list.slice().reverse().map((v) => el("li", {
      "data-version": v.version, onclick: (ev) => showDiff(v, ev.currentTarget),
    }, `version ${v.version} · ${clock(v.ts)} · ${v.author || ""}`)));
  } catch (e) {
    if (e.status !== 409) notify(`versions: ${e.message}`, true);
  }
}

function showDiff(version, node) {
  for (const li of $("versions").children) li.classList.toggle("shown", li === node);
  const lines = (version.diff || "(the first version: no diff)").split("\n");
  $("diff").replaceChildren(...lines.map((line) => el("div", {
    class: line.startsWith("@@") ? "hunk" : line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : null,
  }, line || " ")));
}
