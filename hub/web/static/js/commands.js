// A manual command to one module of the selected unit, sent through the hub (which holds the lease and
// checks it against $birth); the form is built from the module's commands in $birth.
import { post } from "./api.js";
import { store, on } from "./store.js";
import { el } from "./util.js";

const LECIS = ["ABORT", "CLEAR", "RESET"];
let root = null;
let built = "";

export function initCommands(node, isOperator) {
  root = node;
  if (!isOperator) { root.hidden = true; return; }
  on("select", build);
  on("units", () => { if (shape() !== built) build(); });
}

function modules() {
  const unit = store.units.get(store.selected);
  return unit ? unit.modules.filter((m) => m.kind) : [];
}

function shape() {
  return `${store.selected}:` + modules().map((m) => `${m.module}=${Object.keys(m.commands || {}).join(",")}`)
    .join(";");
}

function input(name, spec) {
  const attrs = { name, "data-param": name, "data-type": spec.type };
  if (spec.type === "boolean") return el("input", { ...attrs, type: "checkbox" });
  if (spec.type === "number" || spec.type === "integer") {
    return el("input", { ...attrs, type: "number", step: spec.type === "integer" ? 1 : "any",
      min: spec.min ?? null, max: spec.max ?? null, value: spec.default ?? null, class: "param" });
  }
  return el("input", { ...attrs, type: "text", value: spec.default ?? null, class: "param" });
}

function build() {
  built = shape();
  const mods = modules();
  if (!store.selected || !mods.length) { root.replaceChildren(); return; }
  const result = el("span", { class: "since", id: "command-result" });
  const params = el("span", { class: "params" });
  const moduleSel = el("select", { id: "command-module" }, mods.map((m) => el("option", {}, m.module)));
  const commandSel = el("select", { id: "command-name" });
  const fill = () => {
    const mod = mods.find((m) => m.module === moduleSel.value);
    const names = [...Object.keys((mod && mod.commands) || {}), ...LECIS];
    commandSel.replaceChildren(...names.map((n) => el("option", {}, n)));
    fillParams();
  };
  const fillParams = () => {
    const mod = mods.find((m) => m.module === moduleSel.value);
    const spec = ((mod && mod.commands) || {})[commandSel.value] || {};
    params.replaceChildren(...Object.entries(spec.params || {}).map(([name, p]) =>
      el("label", { class: "param-label" }, `${name}${p.unit ? ` (${p.unit})` : ""} `, input(name, p))));
  };
  moduleSel.addEventListener("change", fill);
  commandSel.addEventListener("change", fillParams);
  const send = async (event) => {
    event.preventDefault();
    const args = {};
    for (const field of params.querySelectorAll("input")) {
      field.classList.remove("bad");
      if (field.type === "checkbox") args[field.name] = field.checked;
      else if (field.value === "") continue;
      else if (field.dataset.type === "number" || field.dataset.type === "integer") args[field.name] = Number(field.value);
      else args[field.name] = field.value;
    }
    result.textContent = "sending...";
    try {
      const answer = await post(`/api/units/${store.selected}/modules/${moduleSel.value}/command`,
        { cmd: commandSel.value, args });
      result.textContent = `${answer.cmd}: ${answer.status}${answer.error ? ` (${answer.error.message})` : ""}`;
    } catch (e) {
      const param = e.field && e.field.startsWith("args.") ? e.field.slice(5) : null;
      if (param) params.querySelector(`input[name="${param}"]`)?.classList.add("bad");
      result.textContent = `refused: ${e.message}`;
    }
  };
  root.replaceChildren(el("form", { class: "command-form", onsubmit: send },
    el("b", {}, `Command to ${store.selected}`), moduleSel, commandSel, params,
    el("button", { type: "submit", id: "command-send" }, "Send"), result));
  fill();
}
