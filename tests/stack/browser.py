"""Drive the Prefect UI in headless Chromium the way an operator does: from the UI's front
page to a deployment, its run form (Run -> Custom run), the run page and its artifacts.

Playwright drives Debian's `chromium` (playwright's own browser download would need the
internet). Selectors are roles, labels and visible text, so they follow the UI's wording,
not its markup. Nothing here knows how the stack was started: only the UI's base URL.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Locator, Page, expect, sync_playwright

# The machine is slow: a page of the UI can take several seconds to settle.
ACTION_TIMEOUT_MS = 30_000
SUBMIT_ATTEMPTS = 4
ADD_ITEM_ATTEMPTS, ADD_ITEM_SECONDS = 3, 10


def chromium_path() -> str | None:
    return shutil.which("chromium")


@contextmanager
def chromium() -> Iterator[Page]:
    """A page in a fresh headless Chromium (no saved UI preference: the UI's default)."""
    executable = chromium_path()
    if executable is None:
        raise RuntimeError("no `chromium` on PATH: apt-get install chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.set_default_timeout(ACTION_TIMEOUT_MS)
            expect.set_options(timeout=ACTION_TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def _label(pattern: str) -> re.Pattern[str]:
    """A form label: the field's name or title, "(Optional)" when it has a default."""
    return re.compile(rf"^\s*{pattern}(\s*\(optional\))?\s*$", re.IGNORECASE)


def field(scope: Page | Locator, pattern: str, *, last: bool = False) -> Locator:
    """The form field whose label matches (the first such label in `scope`, or the last): the
    nearest block around the label that holds a fieldset, where the form puts its input."""
    labels = scope.locator("label").filter(has_text=_label(pattern))
    label = labels.last if last else labels.first
    return label.locator("xpath=ancestor::div[.//fieldset][1]")


class PrefectUI:
    """The pages of the Prefect UI this test goes through."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url.rstrip("/")

    def open_deployment(self, deployment_id: str, name: str) -> None:
        """From the front page, through the Deployments list, to the deployment's page."""
        page = self.page
        page.goto(self.base_url + "/")
        page.get_by_role("link", name="Deployments", exact=True).first.click()
        # The list links each deployment and its flow, both by name: the deployment's link.
        link = page.get_by_role("link", name=name, exact=True).and_(
            page.locator(f"[href*='{deployment_id}']")
        )
        link.first.click()
        expect(page).to_have_url(re.compile(re.escape(deployment_id)))

    def open_custom_run(self) -> None:
        page = self.page
        page.get_by_role("button", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Custom run").click()
        expect(page.get_by_role("button", name="Submit")).to_be_visible()
        expect(page.get_by_text("Parameters", exact=True)).to_be_visible()

    def switch(self, pattern: str) -> Locator:
        return self.page.get_by_label(_label(pattern))

    def fill_text(self, pattern: str, value: str) -> None:
        self.page.get_by_label(_label(pattern)).fill(value)

    def fill_alert_batch(self, payload: Mapping[str, Any]) -> None:
        """The `alerts` parameter through its form: the batch's version and status, then one
        alert (status, labels as JSON, starts today, fingerprint)."""
        page = self.page
        alerts = field(page, "alerts")
        alerts.get_by_role("tab", name="AlertBatch").click()
        field(alerts, "version").get_by_role("textbox").fill(str(payload["version"]))
        self._choose(alerts.get_by_role("button", name="Select AlertStatus").first, "firing")
        # The batch's own list of alerts: the label after the `alerts` parameter's.
        items = field(alerts, "alerts", last=True)
        status = items.get_by_role("button", name="Select AlertStatus")
        for _ in range(ADD_ITEM_ATTEMPTS):
            # A click that lands while the form re-renders the batch adds nothing (seen once
            # in CI: no item after 30 s); one that did add shows its fields within seconds.
            items.get_by_role("button", name="Add item").click()
            try:
                expect(status.first).to_be_visible(timeout=ADD_ITEM_SECONDS * 1000)
                break
            except AssertionError:
                continue
        expect(status).to_have_count(1)
        (alert,) = payload["alerts"]
        self._choose(status.first, "firing")
        labels = field(items, "labels").locator("[contenteditable=true]")
        labels.click()
        # One input event: CodeMirror's bracket closing acts on typed keys only.
        page.keyboard.insert_text(json.dumps(alert["labels"]))
        expect(labels).to_contain_text(alert["labels"]["alertname"])
        picker = field(items, "starts_?at").locator("[aria-haspopup=dialog]")
        picker.click()
        page.get_by_role("dialog").get_by_role("button", name=re.compile(r"^Today")).click()
        page.keyboard.press("Escape")
        expect(picker).not_to_have_text(re.compile("MM/DD"))
        field(items, "fingerprint").get_by_role("textbox").fill(alert["fingerprint"])

    def _choose(self, select: Locator, option: str) -> None:
        select.click()
        self.page.get_by_role("option", name=option, exact=True).click()
        expect(select).to_have_text(option)

    def submit(self) -> dict[str, Any]:
        """Submit the run form; the flow run the UI created (the API's answer)."""
        page = self.page

        def created(response: Any) -> bool:
            return bool(
                response.request.method == "POST" and response.url.endswith("/create_flow_run")
            )

        for attempt in range(1, SUBMIT_ATTEMPTS + 1):
            with page.expect_response(created) as answer:
                page.get_by_role("button", name="Submit").click()
            response = answer.value
            # A busy SQLite server answers 503 ("database is locked") once its own retries
            # (remediate.prefect_server) have failed too; the UI does not retry: it shows
            # "Unknown error while creating flow run" and keeps the form, so the operator
            # submits again.
            if response.status < 500 or attempt == SUBMIT_ATTEMPTS:
                break
            print(f"\nsubmit {attempt}: the API answered {response.status}; again", flush=True)
            page.wait_for_timeout(2_000 * attempt)
        assert response.ok, f"creating the flow run failed: {response.status} {response.text()}"
        flow_run: dict[str, Any] = response.json()
        return flow_run

    def open_run(self, flow_run_id: str) -> None:
        """The run page, through the UI's "View run" notice (or its URL if the notice has
        already gone)."""
        page = self.page
        view = page.get_by_role("link", name="View run").or_(
            page.get_by_role("button", name="View run")
        )
        try:
            view.first.click(timeout=5_000)
        except PlaywrightError:  # the toast is gone: same page, by address
            base = page.url.split("/deployments/", 1)[0]
            page.goto(f"{base}/runs/flow-run/{flow_run_id}")
        expect(page).to_have_url(re.compile(re.escape(flow_run_id)))
        # The notice stays while the pointer rests on it: move away and let it go.
        page.mouse.move(1, 1)

    def expect_state(self, state: str, timeout_ms: int) -> None:
        """The run page's state badge (the page follows the run without a reload)."""
        badge = self.page.get_by_text(state, exact=True).first
        expect(badge).to_be_visible(timeout=timeout_ms)

    def show_artifacts(self, key: str) -> Locator:
        page = self.page
        page.get_by_role("tab", name="Artifacts").click()
        card = page.get_by_role("heading", name=key, exact=True)
        expect(card).to_be_visible()
        return card

    def open_artifact(self, key: str) -> Locator:
        """The artifact's own page, from its card; its rendered content (once it shows)."""
        page = self.page
        page.get_by_role("link").filter(
            has=page.get_by_role("heading", name=key, exact=True)
        ).first.click()
        expect(page).to_have_url(re.compile(r"/artifacts/artifact/"))
        expect(page.get_by_role("tab", name="Artifact", exact=True)).to_be_visible()
        content = page.get_by_role("tabpanel")
        expect(content.get_by_role("heading").first).to_be_visible()
        return content

    def screenshot(self, path: Path) -> Path:
        """The page as shown, once the UI's notices (toasts) have gone."""
        with contextlib.suppress(PlaywrightError):
            self.page.locator("[data-sonner-toast]").first.wait_for(state="hidden", timeout=10_000)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path))
        return path
