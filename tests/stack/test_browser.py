"""The operator's path in a real browser: the Prefect UI's triage form starts a dry run.

Headless Chromium opens the UI's front page, goes to the `triage` deployment, fills its run
form (Run -> Custom run) with an Alertmanager alert, leaves "dry run" ticked, submits, follows
the run to Completed (on the run page, and through the API to fail fast with the reason), and
opens the run's Artifacts, where the `triage-decision` artifact must show. The run page is kept
as a screenshot in var/test-artifacts/ (its path is printed; on a failure, the page as it was).

It runs on the shared `remediate up` stack (tests/stack/conftest.py).
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from tests.stack.browser import PrefectUI, chromium
from tests.stack.up import RunningStack

# The stack's start (a fresh Prefect server, 10-15 s; the served deployments) counts too.
# One worker runs both modules under xdist: they share one stack (conftest.py).
pytestmark = [pytest.mark.timeout(600), pytest.mark.xdist_group("stack")]

ROOT = Path(__file__).resolve().parents[2]
FLOW, DEPLOYMENT = "triage", "triage"
DECISION_ARTIFACT = "triage-decision"
SAMPLE_ALERT = ROOT / "tests" / "fixtures" / "alerts" / "crashloop-single.json"
TEST_ARTIFACTS = ROOT / "var" / "test-artifacts"
SCREENSHOT = TEST_ARTIFACTS / "triage-run.png"
FAILURE_SHOT = TEST_ARTIFACTS / "triage-run-failure.png"
# A triage dry run takes 5-20 s once the runner has picked it up (it polls every second).
RUN_TIMEOUT = 150.0
FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def alert_payload(fingerprint: str) -> dict[str, Any]:
    """The sample crash-loop alert, under a fingerprint of this test's own (the store
    deduplicates alerts by fingerprint across runs of a long-lived stack)."""
    payload: dict[str, Any] = json.loads(SAMPLE_ALERT.read_text())
    payload["alerts"][0]["fingerprint"] = fingerprint
    return payload


def deployment_id(api_url: str) -> str:
    answer = httpx.get(f"{api_url}/deployments/name/{FLOW}/{DEPLOYMENT}", timeout=10)
    answer.raise_for_status()
    found: str = answer.json()["id"]
    return found


def final_state(api_url: str, flow_run_id: str, timeout: float) -> dict[str, Any]:
    """The flow run once it has ended (the API's view), or a failure after `timeout`."""
    deadline = time.monotonic() + timeout
    run: dict[str, Any] = {}
    while time.monotonic() < deadline:
        answer = httpx.get(f"{api_url}/flow_runs/{flow_run_id}", timeout=10)
        answer.raise_for_status()
        run = answer.json()
        if run["state_type"] in FINAL_STATES:
            return run
        time.sleep(1)
    pytest.fail(
        f"flow run {flow_run_id} still {run.get('state_name')} after {timeout:.0f} s "
        f"(is the triage deployment served?)"
    )


def run_logs(api_url: str, flow_run_id: str) -> str:
    answer = httpx.post(
        f"{api_url}/logs/filter",
        json={"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200},
        timeout=10,
    )
    return "\n".join(log["message"] for log in answer.json()) if answer.is_success else ""


class Phases:
    """How long each step took, printed with the test's output (the machine is slow)."""

    def __init__(self) -> None:
        self.last = time.monotonic()
        self.took: list[str] = []

    def done(self, what: str) -> None:
        now = time.monotonic()
        self.took.append(f"{what} {now - self.last:.1f} s")
        self.last = now

    def __str__(self) -> str:
        return ", ".join(self.took)


def test_triage_dry_run_from_the_ui_form(stack: RunningStack) -> None:
    # Never skipped: `make test` and .ci/run install chromium, and a test that did not run
    # must not count as passed.
    assert shutil.which("chromium"), "no `chromium` on PATH (apt-get install chromium)"
    api = stack.api_url
    deployment = deployment_id(api)
    fingerprint = f"browser-{uuid.uuid4().hex[:12]}"
    FAILURE_SHOT.unlink(missing_ok=True)  # a failure's page is only ever this run's
    phases = Phases()
    with chromium() as page:
        ui = PrefectUI(page, stack.prefect_url)
        phases.done("browser")
        try:
            ui.open_deployment(deployment, DEPLOYMENT)
            ui.open_custom_run()
            phases.done("to the form")
            # A run started from the UI is a dry run unless the operator unticks it.
            expect(ui.switch("dry[_ ]run")).to_have_attribute("aria-checked", "true")
            ui.fill_alert_batch(alert_payload(fingerprint))
            ui.fill_text("approved[_ ]by", "browser test")
            phases.done("filling it")
            flow_run = ui.submit()
            parameters = flow_run["parameters"]
            assert parameters["dry_run"] is True, parameters
            assert parameters["alerts"]["alerts"][0]["fingerprint"] == fingerprint, parameters
            print(f"\nflow run {flow_run['id']} created from the form", flush=True)

            ui.open_run(flow_run["id"])
            run = final_state(api, flow_run["id"], RUN_TIMEOUT)
            assert run["state_type"] == "COMPLETED", (
                f"{run['name']}: {run['state_name']}: {run['state'].get('message')}\n"
                + run_logs(api, flow_run["id"])
            )
            ui.expect_state("Completed", timeout_ms=30_000)
            phases.done("submit to Completed")
            ui.show_artifacts(DECISION_ARTIFACT)
            shot = ui.screenshot(SCREENSHOT)
            print(f"run page ({run['name']}): {shot}", flush=True)
            content = ui.open_artifact(DECISION_ARTIFACT)
            expect(content).not_to_be_empty()
            artifact = ui.screenshot(TEST_ARTIFACTS / f"{DECISION_ARTIFACT}.png")
            print(f"artifact page: {artifact}", flush=True)
            phases.done("artifacts")
        except BaseException:
            try:
                failure = ui.screenshot(FAILURE_SHOT)
                print(f"\nthe page at the failure ({page.url}): {failure}", flush=True)
            except PlaywrightError as exc:  # the browser itself failed
                print(f"\nno screenshot of the failure: {exc}", flush=True)
            _print_stack_logs(stack.logs)
            raise
        finally:
            print(f"browser: {phases}", flush=True)


def _print_stack_logs(logs: Path) -> None:
    for log in sorted(logs.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-30:]
        print(f"--- {log.name} (last lines)\n" + "\n".join(tail), flush=True)
