"""The web console (``saga console``) in a real browser, on the real local stack: Debian's Chromium,
headless at a fixed window size, driven by Selenium through Debian's chromedriver. The console runs as
its own process, started the way a person starts it; every wait is an explicit wait on the page.

When Chromium or its driver is missing, the test setup installs Debian's ``chromium`` and
``chromium-driver`` if it runs as root (as CI does), and otherwise skips, naming the missing binary.
Screenshots go to ``$SAGA_TEST_ARTIFACTS/web-console/`` (default ``build/test-artifacts``).
"""

from __future__ import annotations

import base64
import dataclasses
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from saga_orchestrator.workflows.saga_orchestrator import SagaOrchestrator
from selenium import webdriver
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from devstack.stack import LocalStack
from tests.e2e.results import ResultListener
from tests.e2e.test_e2e_operator_decisions import notice_of, result_of, stuck_hotel
from tests.e2e.test_e2e_sagas import new_saga_id, trip

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
WINDOW = (1280, 1000)
PAGE_WAIT = 30.0  # seconds for anything the page shows (a saga's end included)
# A person has a week to decide on a stuck saga; this test's has a minute (the e2e stack's default is
# a few seconds, too short for clicking through a confirmation).
STUCK_DECISION_SECONDS = 60
BINARIES = {"chromium": "chromium", "chromedriver": "chromium-driver"}


def missing_binaries() -> list[str]:
    return [name for name in BINARIES if shutil.which(name) is None]


def browser_binaries() -> tuple[str, str]:
    """Chromium and chromedriver: installed from Debian's packages when missing and running as root."""
    if missing_binaries() and os.geteuid() == 0 and shutil.which("apt-get"):
        packages = sorted({BINARIES[name] for name in missing_binaries()})
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
            subprocess.run(command, capture_output=True, timeout=600, check=False)
    missing = missing_binaries()
    if missing:
        pytest.skip(f"{missing[0]} is not installed (Debian package {BINARIES[missing[0]]})")
    return str(shutil.which("chromium")), str(shutil.which("chromedriver"))


def artifacts_dir() -> Path:
    """Where this run's screenshots go: ``$SAGA_TEST_ARTIFACTS`` (default build/test-artifacts)."""
    base = os.environ.get("SAGA_TEST_ARTIFACTS") or str(REPO_ROOT / "build" / "test-artifacts")
    directory = Path(base) / "web-console"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="module")
def console_url(stack: LocalStack) -> Iterator[str]:
    """``saga console --port 0`` as its own process, with the stack's environment; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "saga_orchestrator.console", "console", "--port", "0"],
        env=stack.function_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in process.stdout or []:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        first = lines.get(timeout=30)
        assert first.startswith("saga console on http://127.0.0.1:"), first
        yield first.split()[3]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
    finally:
        process.kill()
        process.wait(timeout=15)


@pytest.fixture(scope="module")
def browser() -> Iterator[Chrome]:
    chromium, chromedriver = browser_binaries()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # to see script and CSP errors
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=chromedriver))
    try:
        yield driver
    finally:
        driver.quit()


def browser_errors(driver: Chrome) -> list[str]:
    """The page errors the browser logged since the last call (a script's, a refused style or script)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def wait(driver: Chrome) -> WebDriverWait[Chrome]:
    return WebDriverWait(driver, PAGE_WAIT, poll_frequency=0.1)


def shoot(driver: Chrome, name: str) -> Path:
    """A screenshot of the whole page, beyond the window's height, under the run's artifacts."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True, "clip": clip})
    path = artifacts_dir() / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def timeline_rows(driver: Chrome) -> list[tuple[str, ...]]:
    """(kind, step, status) of each row of the saga page's timeline, top to bottom."""
    rows = driver.find_elements(By.CSS_SELECTOR, "ol.timeline li.row")
    return [tuple(str(r.get_attribute(f"data-{key}")) for key in ("kind", "step", "status")) for r in rows]


def bar_of(driver: Chrome, kind: str, step: str) -> tuple[float, float]:
    """(x, width) of a row's bar, in percent of the saga's span."""
    rect = driver.find_element(
        By.CSS_SELECTOR, f'ol.timeline li.row[data-kind="{kind}"][data-step="{step}"] rect.bar'
    )
    return float(str(rect.get_attribute("x")).rstrip("%")), float(
        str(rect.get_attribute("width")).rstrip("%")
    )


def list_row(driver: Chrome, saga_id: str, state: str) -> Any:
    """A wait condition: the list's row of ``saga_id`` in ``state``."""

    def found(d: Chrome) -> WebElement | bool:
        rows = d.find_elements(By.CSS_SELECTOR, f'#rows tr[data-saga="{saga_id}"][data-state="{state}"]')
        return rows[0] if rows else False

    return found


def stuck_orchestrator(stack: LocalStack, orchestrator: SagaOrchestrator) -> SagaOrchestrator:
    settings = dataclasses.replace(orchestrator.settings, stuck_decision_seconds=STUCK_DECISION_SECONDS)
    return SagaOrchestrator(
        settings.project_id, settings.location, settings.workflow, clients=stack.factory, settings=settings
    )


@dataclasses.dataclass(frozen=True)
class Sagas:
    declined: str  # its payment is declined: compensated
    stuck: str  # its hotel's undo fails for good: stuck until an operator decides


@pytest.fixture(scope="module")
def sagas(browser: Chrome, stack: LocalStack, orchestrator: SagaOrchestrator, console_url: str) -> Sagas:
    """Both sagas, started once the list page is open (so the first test sees them arrive there)."""
    started = Sagas(new_saga_id("web-declined"), new_saga_id("web-stuck"))
    browser.get(console_url + "?since=10m")
    wait(browser).until(ec.presence_of_element_located((By.ID, "rows")))
    browser.execute_script("window.notReloaded = true")
    stack.publish_request(trip(stack, started.declined, {"charge_payment": {"simulate": "FAILURE"}}))
    stuck = stuck_hotel(stack, started.stuck)
    stuck_orchestrator(stack, orchestrator).execute_saga(stuck["steps"], saga_id=started.stuck)
    return started


def test_the_list_shows_new_sagas_live_with_the_stuck_one_highlighted(
    sagas: Sagas, results: ResultListener, browser: Chrome
) -> None:
    wait(browser).until(list_row(browser, sagas.declined, "compensated"))
    stuck = wait(browser).until(list_row(browser, sagas.stuck, "stuck"))
    assert "attention" in str(stuck.get_attribute("class"))
    assert "for an operator's decision" in browser.find_element(By.ID, "attention").text
    assert browser.execute_script("return window.notReloaded") is True  # rows came by polling
    assert browser_errors(browser) == []
    shoot(browser, "list")


def test_a_compensated_saga_draws_each_action_as_a_bar_in_the_order_it_ran(
    sagas: Sagas, results: ResultListener, console_url: str, browser: Chrome
) -> None:
    assert result_of(results, sagas.declined)["status"] == "compensated"
    browser.get(console_url)
    wait(browser).until(ec.element_to_be_clickable((By.LINK_TEXT, sagas.declined))).click()
    wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, "ol.timeline li.row")))
    assert browser.find_element(By.CSS_SELECTOR, "h1 .badge").text == "compensated"
    assert timeline_rows(browser) == [
        ("execute", "book_flight", "succeeded"),
        ("execute", "reserve_hotel", "succeeded"),
        ("execute", "charge_payment", "failed"),
        ("compensate", "reserve_hotel", "succeeded"),
        ("compensate", "book_flight", "succeeded"),
    ]
    failed_at, failed_for = bar_of(browser, "execute", "charge_payment")
    hotel_undone_at, _ = bar_of(browser, "compensate", "reserve_hotel")
    flight_undone_at, _ = bar_of(browser, "compensate", "book_flight")
    assert bar_of(browser, "execute", "book_flight")[0] < failed_at
    assert failed_at + failed_for <= hotel_undone_at + 0.5 and hotel_undone_at <= flight_undone_at <= 100
    assert not browser.find_elements(By.CSS_SELECTOR, "form.verb")  # nothing to do on an ended saga
    shoot(browser, "timeline-compensated")
    assert browser_errors(browser) == []


def confirm(browser: Chrome, verb: str, reason: str, step: str | None = None) -> None:
    """Fill a verb's form on the saga page and press it: the confirmation page opens."""
    form = wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, f"form.verb-{verb}")))
    if step is not None:
        Select(form.find_element(By.NAME, "step")).select_by_value(step)
    form.find_element(By.NAME, "reason").send_keys(reason)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, "section.confirm")))


# A stuck saga's timeline once its hotel undo was skipped: the undo's two failed attempts, then the
# wait for the decision, then the flight's undo.
SKIPPED_TIMELINE = [
    ("execute", "book_flight", "succeeded"),
    ("execute", "reserve_hotel", "succeeded"),
    ("execute", "charge_payment", "succeeded"),
    ("execute", "book_return", "failed"),
    ("compensate", "charge_payment", "succeeded"),
    ("compensate", "reserve_hotel", "skipped"),
    ("wait", "reserve_hotel", "skip"),
    ("compensate", "book_flight", "succeeded"),
]


def test_the_stuck_sagas_page_highlights_it_and_offers_its_verbs_and_undo_plan(
    sagas: Sagas, results: ResultListener, console_url: str, browser: Chrome
) -> None:
    notice_of(results, sagas.stuck)
    browser.get(f"{console_url}saga?id={sagas.stuck}")
    banner = wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".waiting.state-stuck")))
    assert "This saga is stuck" in banner.text
    verbs = [f.get_attribute("class") for f in browser.find_elements(By.CSS_SELECTOR, "form.verb")]
    assert [str(v).split()[1] for v in verbs] == ["verb-retry", "verb-skip", "verb-terminate"]
    plan = browser.find_elements(By.CSS_SELECTOR, "section.plan li")
    assert [li.get_attribute("data-step") for li in plan][-2:] == ["reserve_hotel", "book_flight"]
    shoot(browser, "stuck")


def test_skipping_the_stuck_compensation_after_confirming_moves_the_saga_to_compensated(
    sagas: Sagas, results: ResultListener, console_url: str, browser: Chrome
) -> None:
    notice_of(results, sagas.stuck)
    # Another operator opens a terminate's confirmation and leaves it open (pressed last, below).
    browser.get(f"{console_url}saga?id={sagas.stuck}")
    confirm(browser, "terminate", "looked at by ops")
    stale = browser.current_window_handle
    browser.switch_to.new_window("tab")
    browser.get(f"{console_url}saga?id={sagas.stuck}")
    reason = "released by phone <b>&amp;</b> noted"
    confirm(browser, "skip", reason, step="reserve_hotel")
    title = browser.find_element(By.ID, "confirm-title").text
    assert title == f"Skip step reserve_hotel of saga {sagas.stuck}?"
    assert browser.find_element(By.CSS_SELECTOR, "section.confirm .reason").text == reason
    shoot(browser, "confirm-skip")
    browser.find_element(By.CSS_SELECTOR, "button.confirm-send").click()

    notice = wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".notice")))
    assert "skip sent" in notice.text
    wait(browser).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "h1 .badge"), "compensated"))
    assert result_of(results, sagas.stuck)["status"] == "compensated"
    assert timeline_rows(browser) == SKIPPED_TIMELINE
    hotel = browser.find_element(By.CSS_SELECTOR, 'li.row[data-kind="compensate"][data-step="reserve_hotel"]')
    assert hotel.get_attribute("data-attempts") == "2" and "retried" in str(hotel.get_attribute("class"))
    audit = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "section.audit tbody td")]
    assert audit[1:3] == ["skip", "reserve_hotel"] and audit[4] == reason
    shoot(browser, "timeline-after-skip")
    assert browser_errors(browser) == []

    # The terminate confirmed on the stale page is refused, in the library's words.
    browser.switch_to.window(stale)
    browser.find_element(By.CSS_SELECTOR, "button.confirm-send").click()
    error = wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, "p.error")))
    assert f"saga '{sagas.stuck}' is not running" in error.text
    assert browser.find_element(By.CSS_SELECTOR, "h1 .badge").text == "compensated"
    shoot(browser, "stale-verb-refused")
