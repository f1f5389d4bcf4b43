"""Tasks: one trigger (at, after, every, when, while) and the actions it runs.

    - {name: aerate, at: 0s, do: [...]}
    - {name: sample, every: 30m, from: 10m, for: 5h, until: cycles >= 8, do: [...]}
    - {name: logged, after: sample, delay: 1m, do: [...]}      (or after: {event: probe_fault})
    - {name: stop_air, when: bench-1/do1.do_mg > do_high, for: 10s, do: [...]}
    - {name: low_do, while: bench-1/do1.do_mg < 1, every: 1m, do: [...], on_exit: [...]}
"""

from __future__ import annotations

import re
from typing import Any

from hub.script.actions import Checker
from hub.script.durations import MIN_PERIOD_S
from hub.script.expr import ParsedExpression
from hub.script.model import After, At, Every, Position, Task, Trigger, When, While
from hub.script.reader import did_you_mean
from lecis.yaml_loader import YPath, describe

TRIGGERS = ("at", "after", "every", "when", "while")
EXTRAS = {"at": (), "after": ("delay",), "every": ("for", "until", "from"), "when": ("for",),
          "while": ("every", "on_exit")}
COMMON = ("name", "do", "description")
TASK_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}\Z", re.ASCII)
EVENT_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}\Z", re.ASCII)


def read_tasks(checker: Checker, duration_s: float | None) -> tuple[Task, ...]:
    reader = checker.reader
    value = reader.get(("tasks",))
    if not reader.has(("tasks",)) or value is None:
        return ()
    if not isinstance(value, list):
        reader.fail(("tasks",), f"expected a list of tasks (each line starting with - name: ...), got "
                                f"{describe(value)}", value=True)
        return ()
    tasks: list[Task] = []
    first: dict[str, Position] = {}
    follows: list[tuple[str, str, YPath]] = []
    for index, item in enumerate(value):
        task = _task(checker, ("tasks", index), item, duration_s, follows)
        if task is None:
            continue
        if task.name in first:
            reader.fail(("tasks", index, "name"), f"duplicate task name {task.name!r} (first given at line "
                                                  f"{first[task.name].line})", value=True)
            continue
        first[task.name] = task.position
        tasks.append(task)
    names = {str(item.get("name")) for item in value if isinstance(item, dict)}
    for name, target, path in follows:
        if target == name:
            reader.fail(path, f"task {name} cannot follow itself; use every: for a repetition", value=True)
        elif target not in names:
            reader.fail(path, f"unknown task {target!r}" + did_you_mean(target, names - {name}, "tasks"),
                        value=True)
    return tuple(tasks)


def _task(checker: Checker, path: YPath, item: Any, duration_s: float | None,
          follows: list[tuple[str, str, YPath]]) -> Task | None:
    reader = checker.reader
    if not isinstance(item, dict):
        reader.fail(path, f"expected a task (name:, a trigger and do:), got {describe(item)}", value=True)
        return None
    name = reader.string(path + ("name",), None, required=True, pattern=TASK_NAME,
                         expected="a task name (lower-case letters, digits, _ and -)")
    kinds = [k for k in TRIGGERS if k in item and not (k == "every" and "while" in item)]
    if not kinds:
        reader.fail(path, f"task {name or ''}: missing its trigger; expected one of {', '.join(TRIGGERS)}"
                    .replace("task : ", "task: "))
    elif len(kinds) > 1:
        reader.fail(path + (kinds[1],), f"a task has one trigger; this one has {' and '.join(kinds)} "
                                        "(split it into two tasks)")
    kind = kinds[0] if len(kinds) == 1 else None
    allowed = (*COMMON, *TRIGGERS) if kind is None else (*COMMON, kind, *EXTRAS[kind])
    for key in item:
        if key not in allowed:
            if kind is not None and key in {e for extras in EXTRAS.values() for e in extras} | set(TRIGGERS):
                reader.fail(path + (key,), f"{key} does not apply to a task triggered by {kind}")
            else:
                every_key = {*COMMON, *TRIGGERS, *(e for extras in EXTRAS.values() for e in extras)}
                reader.fail(path + (key,), f"unknown key {key!r}" + did_you_mean(key, every_key, "task keys"))
    if not reader.has(path + ("do",)) or not reader.get(path + ("do",)):
        reader.fail(path + ("do",) if reader.has(path + ("do",)) else path,
                    "missing; expected do: with at least one action")
    actions = checker.actions(path + ("do",))
    trigger = None if kind is None else _trigger(checker, path, kind, duration_s)
    if kind == "after" and name is not None:
        target = _after_target(reader.get(path + ("after",)))
        if target is not None and target[0] == "task":
            follows.append((name, target[1], path + ("after",) + (() if isinstance(
                reader.get(path + ("after",)), str) else ("task",))))
    if name is None or trigger is None:
        return None
    return Task(name, trigger, actions, reader.at(path))


def _after_target(value: Any) -> tuple[str, str] | None:
    if isinstance(value, str):
        return "task", value
    if isinstance(value, dict) and len(value) == 1:
        key, target = next(iter(value.items()))
        if key in ("task", "event") and isinstance(target, str):
            return key, target
    return None


def _trigger(checker: Checker, path: YPath, kind: str, duration_s: float | None) -> Trigger | None:
    reader = checker.reader
    if kind == "at":
        elapsed = reader.duration(path + ("at",), None, required=True)
        if elapsed is not None and duration_s is not None and elapsed > duration_s:
            reader.fail(path + ("at",), f"at {elapsed:g} s is after the end of the experiment "
                                        f"(duration {duration_s:g} s)", value=True)
            return None
        return None if elapsed is None else At(elapsed)
    if kind == "after":
        delay = reader.duration(path + ("delay",), 0.0) or 0.0
        target = _after_target(reader.get(path + ("after",)))
        if target is None:
            reader.fail(path + ("after",), f"expected a task name, {{task: NAME}} or {{event: CODE}}, got "
                                           f"{describe(reader.get(path + ('after',)))}", value=True)
            return None
        if target[0] == "event" and not EVENT_CODE.match(target[1]):
            reader.fail(path + ("after", "event"), "expected an event code such as probe_fault", value=True)
            return None
        return After(target[1], None, delay) if target[0] == "task" else After(None, target[1], delay)
    if kind == "every":
        period = reader.duration(path + ("every",), None, required=True, positive=True,
                                 minimum=MIN_PERIOD_S)
        start = reader.duration(path + ("from",), 0.0) or 0.0
        for_s = reader.duration(path + ("for",), None, positive=True)
        until = checker.expression(path + ("until",), "boolean", required=False, what="a condition")
        return None if period is None else Every(period, start, for_s, until)
    condition = _condition(checker, path + (kind,), kind)
    if kind == "when":
        for_s = reader.duration(path + ("for",), 0.0) or 0.0
        return None if condition is None else When(condition, for_s)
    if not reader.has(path + ("every",)):
        reader.fail(path + ("while",), "a while task repeats while its condition holds: give every: (e.g. "
                                       "every: 1m); to act once when it turns true, use when:")
    period = reader.duration(path + ("every",), None, positive=True, minimum=MIN_PERIOD_S)
    on_exit = checker.actions(path + ("on_exit",))
    return None if condition is None or period is None else While(condition, period, on_exit)


def _condition(checker: Checker, path: YPath, kind: str) -> ParsedExpression | None:
    expr = checker.expression(path, "boolean", what="a condition")
    if expr is not None and not expr.names and not expr.units:
        checker.reader.fail_at(expr.position, f"this {kind} condition reads no reading, signal or variable, "
                                              "so nothing can make it change; use at: or every: for times")
        return None
    return expr
