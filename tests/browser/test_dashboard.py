"""The dashboard in Debian's Chromium against a real hub, broker and simulated unit.

The ESTOP test runs last in this file: it stops every module of the lab.
"""

from __future__ import annotations

import os
from typing import Any

from tests.browser.rig import ARTIFACTS, PASSWORD, USER, WebLab

EXPECT_S = 5_000  # ms: what a user would call "at once"
PATIENT = 20_000  # ms: how long a wait may take on a loaded machine before it is a failure


def sign_in(page: Any, lab: WebLab, user: str = USER, password: str = PASSWORD) -> None:
    page.goto(lab.url)
    page.fill("#login-user", user)
    page.fill("#login-password", password)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#estop-all:not([hidden])")


def test_a_wrong_password_is_refused_without_a_hint(page: Any, lab: WebLab) -> None:
    page.goto(lab.url)
    page.fill("#login-user", USER)
    page.fill("#login-password", "not it")
    page.click("#login-form button[type=submit]")
    page.wait_for_function("document.querySelector('#login-error').textContent.length > 0")
    assert page.text_content("#login-error") == "wrong user name or password"
    assert page.is_hidden("#estop-all")


def test_signed_in_the_lab_unit_is_online_within_5_s(page: Any, lab: WebLab) -> None:
    sign_in(page, lab)
    card = f"article.unit[data-unit='{lab.unit}'][data-presence='ready']"
    page.wait_for_selector(card, timeout=EXPECT_S)
    assert page.is_visible("#estop-all")
    modules = page.eval_on_selector_all(f"{card} tr[data-module]", "rows => rows.map(r => r.dataset.module)")
    assert set(modules) >= {"ph1", "do1", "temp1", "aeration", "heater", "base_pump"}
    page.wait_for_function(f"[...document.querySelectorAll(\"{card} .lecis\")].every(n => n.dataset.lecis)")
    if "SUPERVISOR_SERVER_URL" not in os.environ:  # the rig's hub runs outside supervisord: the panel says so
        page.wait_for_selector("#processes-panel[data-supervisor='no']", timeout=PATIENT)
        assert "not started by supervisord" in page.text_content("#processes-panel")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_function("document.querySelector('[data-chart=ph1]')?.dataset.points > 5",
                           timeout=PATIENT)
    page.screenshot(path=str(ARTIFACTS / "dashboard-main.png"), full_page=True)


def test_a_chart_receives_new_points(page: Any, lab: WebLab) -> None:
    sign_in(page, lab)
    page.wait_for_selector("[data-chart=do1]", timeout=PATIENT)
    page.wait_for_function("document.querySelector('[data-chart=do1]').dataset.points > 0", timeout=PATIENT)
    page.wait_for_function("window.labedgeStats.backfilled >= 3")  # the last 10 minutes from history
    first = int(page.get_attribute("[data-chart=do1]", "data-points"))
    live = page.evaluate("window.labedgeStats.points")
    page.wait_for_function(f"document.querySelector('[data-chart=do1]').dataset.points > {first} && "
                           f"window.labedgeStats.points > {live}", timeout=PATIENT)


def test_outputs_switching_are_marked_and_the_session_view_reads_history(page: Any, lab: WebLab) -> None:
    sign_in(page, lab)
    page.wait_for_function("window.labedgeStats.marks > 0", timeout=PATIENT)  # aeration, every 2 s
    page.wait_for_function("document.querySelector('[data-chart=ph1]')?.dataset.points > 0", timeout=PATIENT)
    page.click("#range-session")
    page.wait_for_selector("#range-session.on")
    page.wait_for_function("document.querySelector('[data-chart=ph1]').dataset.points > 0", timeout=PATIENT)
    page.click("#range-live")
    page.wait_for_selector("#range-live.on")


def test_a_manual_command_from_the_page_names_a_bad_parameter(page: Any, lab: WebLab) -> None:
    sign_in(page, lab)
    page.wait_for_selector("#command-module", timeout=PATIENT)
    page.select_option("#command-module", "base_pump")
    page.select_option("#command-name", "dose")
    page.fill("#command input[name=ml]", "0.5")
    page.click("#command-send")
    page.wait_for_function("document.querySelector('#command-result').textContent.startsWith('dose: done')",
                           timeout=PATIENT)
    page.fill("#command input[name=ml]", "100000")
    page.click("#command-send")
    page.wait_for_selector("#command input[name=ml].bad", timeout=PATIENT)
    assert page.text_content("#command-result").startswith("refused:")


def test_a_script_error_is_marked_at_its_line_as_you_type(page: Any, lab: WebLab) -> None:
    sign_in(page, lab)
    page.click("#nav a[data-view=experiment]")
    page.wait_for_function("document.querySelector('#script').value.includes('tasks:')")
    text = page.input_value("#script")
    lines = text.splitlines()
    bad_line = next(i for i, line in enumerate(lines, 1) if "every: 2s" in line)
    lines[bad_line - 1] = lines[bad_line - 1].replace("every: 2s", "every: soon")
    page.fill("#script", "\n".join(lines) + "\n")
    page.wait_for_selector(f"#gutter span.err[data-line='{bad_line}']", timeout=PATIENT)
    assert page.eval_on_selector_all("#gutter span.err", "s => s.map(n => +n.dataset.line)") == [bad_line]
    assert f"line {bad_line}" in page.text_content("#problems")
    page.fill("#script", text)
    page.wait_for_selector("#validation.ok", timeout=PATIENT)
    assert page.query_selector("#gutter span.err") is None


def test_a_session_is_started_and_stopped_by_clicking(page: Any, lab: WebLab) -> None:
    sign_in(page, lab)
    card = f"article.unit[data-unit='{lab.unit}']"
    page.wait_for_selector(f"{card}[data-presence='ready'] button.session-start", timeout=PATIENT)
    page.click(f"{card} button.session-start")
    page.wait_for_selector(f"{card} .session-line[data-session='open'] progress", timeout=PATIENT)
    status, found = lab.api("GET", f"/api/sessions?unit={lab.unit}", token=lab.token())
    assert status == 200 and found["open"][lab.unit]["state"] == "open"
    session_id = found["open"][lab.unit]["id"]
    assert page.is_visible(f"#sessions tr[data-session-id='{session_id}'][data-state='open']")
    page.click(f"{card} button.session-stop")
    page.wait_for_selector(f"{card} .session-line:not([data-session='open'])", timeout=PATIENT)
    page.wait_for_selector(f"#sessions tr[data-session-id='{session_id}']:not([data-state='open'])",
                           timeout=PATIENT)
    status, shown = lab.api("GET", f"/api/sessions/{session_id}", token=lab.token())
    assert status == 200 and shown["state"] in ("closing", "closed") and shown["ended_by"] == "api"


def test_the_lab_wide_estop_stops_every_module(page: Any, lab: WebLab) -> None:
    sign_in(page, lab)
    card = f"article.unit[data-unit='{lab.unit}'][data-presence='ready']"
    page.wait_for_selector(card, timeout=PATIENT)
    page.wait_for_function(f"[...document.querySelectorAll(\"{card} .lecis\")].some(n => n.dataset.lecis "
                           "&& n.dataset.lecis !== 'ESTOPPED')")
    page.click("#estop-all")
    page.wait_for_function(
        f"(() => {{ const s = [...document.querySelectorAll(\"{card} .lecis\")].map(n => n.dataset.lecis);"
        " return s.length >= 6 && s.every(v => v === 'ESTOPPED'); })()", timeout=PATIENT)
    # The states arrive over the WebSocket, the confirmation with the POST's answer: either may be first.
    page.wait_for_function("document.querySelector('#notice').textContent.startsWith('ESTOP')",
                           timeout=PATIENT)
    assert "every unit confirmed" in page.text_content("#notice"), page.text_content("#notice")
    page.screenshot(path=str(ARTIFACTS / "dashboard-estopped.png"), full_page=True)
