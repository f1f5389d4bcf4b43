// The sessions table: every unit's sessions, newest first, with upload figures and the verification.
import { get } from "./api.js";
import { store, on } from "./store.js";
import { el, clock, bytes } from "./util.js";

let body = null;
let list = [];

export function initSessions(table) {
  body = table.querySelector("tbody");
  on("sessions", (unit) => {
    const s = store.sessions.get(unit);
    if (s) { list = [s, ...list.filter((x) => x.id !== s.id)]; render(); }
  });
  load();
}

export async function load() {
  try {
    const result = await get("/api/sessions?limit=50");
    list = result.sessions;
    for (const [unit, s] of Object.entries(result.open || {})) store.sessions.set(unit, s);
    for (const s of list) if (!store.sessions.has(s.unit)) store.sessions.set(s.unit, s);
    render();
  } catch (e) { body.replaceChildren(el("tr", {}, el("td", { colspan: 6 }, e.message))); }
}

function verification(s) {
  const up = s.upload || {};
  if (s.state === "closed") return `verified: ${up.files_done} file(s), ${bytes(up.bytes_done)}`;
  if (s.state === "error") return `not verified: ${s.reason || "error"}`;
  if (s.state === "closing") return `final transfer: ${s.reason || `${up.files_pending} file(s) to go`}`;
  return `${up.files_done} file(s) up, ${up.files_pending} pending`;
}

function render() {
  body.replaceChildren(...list.map((s) => el("tr", { "data-session-id": s.id, "data-state": s.state },
    el("td", {}, s.unit), el("td", {}, el("span", { class: `pill ${{ open: "ok", closed: "ok", error: "bad",
      closing: "warn" }[s.state] || ""}` }, s.state)),
    el("td", {}, clock(s.started_at)), el("td", {}, clock(s.ended_at)),
    el("td", {}, [s.started_by, s.user].filter(Boolean).join(" · ")), el("td", {}, verification(s)))));
}
