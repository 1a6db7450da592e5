"""End to end in a browser: the dashboard of a real `riskbudget serve`, in headless Chromium.

The sidecar runs as its own process (gRPC and the admin HTTP port on free
loopback ports). The test feeds it prices, positions and two orders over gRPC,
loads the dashboard, checks that the numbers on the page are the sidecar's,
sets an override through the page's form and shows over gRPC that it took
effect, then clears it with the page's button. It saves a screenshot to
`artifacts/dashboard.png` (and the whole page to `artifacts/dashboard-full.png`).

Chromium and chromedriver come from Debian's `chromium` and `chromium-driver`
packages (`make browser`, part of `make install` and `make test`); without them
the test fails, saying so.
"""

from __future__ import annotations

import base64
import json
import math
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from riskbudget.v1 import types_pb2 as pb
from riskbudget_client import RiskBudgetClient

from .test_serve_process import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = ROOT / "artifacts"
TOKEN = "browser-e2e-token"
CLIENT_TOKEN, READ_TOKEN = "browser-e2e-client-token", "browser-e2e-read-token"
STARTUP_TIMEOUT = 20.0
WAIT = 10.0  # the longest any one page condition may take (the page refreshes every second)

pytestmark = pytest.mark.timeout(60)


# -- the sidecar ---------------------------------------------------------------------------


@dataclass
class Sidecar:
    process: subprocess.Popen
    target: str = ""
    url: str = ""
    lines: list[str] = field(default_factory=list)
    events: queue.Queue = field(default_factory=queue.Queue)

    def read_output(self) -> None:
        """Drain stdout on a thread, so that a chatty sidecar never blocks on a full pipe."""
        for line in self.process.stdout:
            self.lines.append(line)
            try:
                self.events.put(json.loads(line))
            except json.JSONDecodeError:
                pass
        self.events.put(None)

    def wait_for(self, *names: str, timeout: float = STARTUP_TIMEOUT) -> dict[str, dict]:
        """The first log event of each name; fails with the log when one does not come."""
        seen: dict[str, dict] = {}
        deadline = time.monotonic() + timeout
        while set(names) - set(seen):
            try:
                event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                event = None
            if event is None:
                missing = sorted(set(names) - set(seen))
                raise AssertionError(f"sidecar logged no {missing} event (exit code {self.process.poll()}):\n"
                                     + self.log_tail())
            if event.get("event") in names:
                seen.setdefault(event["event"], event)
        return seen

    def log_tail(self, count: int = 40) -> str:
        return "".join(self.lines[-count:])


@contextmanager
def serving(tmp_path, env: dict[str, str] | None = None, **sidecar_settings) -> Iterator[Sidecar]:
    """A `riskbudget serve` process on the default config, with `sidecar_settings` in its
    `sidecar` section and `env` in its environment, until the block ends."""
    config = yaml.safe_load((ROOT / "config" / "default.yaml").read_text())
    config["sidecar"].update(listen="127.0.0.1:0", **sidecar_settings)
    config["http"] = {"listen": "127.0.0.1:0"}
    config["store"] = {"path": str(tmp_path / "state.sqlite3")}
    # Nothing moves by the clock while the test runs: no monitoring tick, no stale
    # price, no expired reservation. Every change comes from the test's own inputs.
    config["risk_budgeting"]["monitoring_interval"] = 3600
    config["limits"]["max_staleness"] = 3600
    config["limits"]["reservation_ttl"] = 3600
    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump(config))
    process = subprocess.Popen(
        [sys.executable, "-m", "riskbudget_sidecar.app.cli", "serve", "--config", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "RISKBUDGET_ADMIN_TOKEN": TOKEN, **(env or {})})
    sidecar = Sidecar(process)
    reader = threading.Thread(target=sidecar.read_output, name="sidecar-stdout", daemon=True)
    reader.start()
    try:
        started = sidecar.wait_for("serving", "http_serving")
        sidecar.target = started["serving"]["target"]
        sidecar.url = started["http_serving"]["url"]
        yield sidecar
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
        reader.join(timeout=5)


@pytest.fixture
def sidecar(tmp_path) -> Iterator[Sidecar]:
    with serving(tmp_path) as running:
        yield running


# -- the browser ---------------------------------------------------------------------------


@pytest.fixture
def browser(tmp_path):
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(f"{' and '.join(missing)} missing: run `make browser` (Debian chromium, chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-quic", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--window-size=1366,900",
                     f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


@contextmanager
def diagnostics(driver, sidecar: Sidecar) -> Iterator[None]:
    """On a failure, keep what shows why: the page as it was, its console, the sidecar's log."""
    (ARTIFACTS / "dashboard-failure.png").unlink(missing_ok=True)  # not one from an earlier run
    try:
        yield
    except BaseException:
        try:
            ARTIFACTS.mkdir(exist_ok=True)
            driver.save_screenshot(str(ARTIFACTS / "dashboard-failure.png"))
            console = "\n".join(f"{e['level']} {e['message']}" for e in driver.get_log("browser"))
            print(f"screenshot of the failure: {ARTIFACTS / 'dashboard-failure.png'}")
            print(f"browser console:\n{console}\nsidecar log (tail):\n{sidecar.log_tail()}")
        except Exception as error:  # the diagnostics must not hide the failure
            print(f"could not collect diagnostics: {error!r}")
        raise


# -- reading the page ----------------------------------------------------------------------

# One script, so that every value comes from the same render (the page re-renders every second).
READ_PAGE = """
const text = (selector) => { const e = document.querySelector(selector); return e ? e.textContent.trim() : null; };
const value = (row, selector) => { const c = row.querySelector(selector); return c ? c.getAttribute('data-value') : null; };
const timeline = document.querySelector('#regime-timeline');
return {
  updated: document.body.getAttribute('data-updated'),
  regime: text('#regime'),
  version: text('#budget-version'),
  timeline: timeline ? timeline.tagName.toLowerCase() : null,
  strategies: Array.from(document.querySelectorAll('#strategies tbody tr[data-strategy]'), (row) => ({
    name: row.getAttribute('data-strategy'), capital: value(row, 'td.capital'),
    leverage: value(row, 'td.leverage'), max_gross: value(row, 'td.max-gross')})),
  symbols: Array.from(document.querySelectorAll('#symbols tbody tr[data-symbol]'), (row) => ({
    name: row.getAttribute('data-symbol'), max_notional: value(row, 'td.max-notional'),
    last_price: value(row, 'td.last-price'), source: row.querySelector('td.source').textContent})),
  gauges: Array.from(document.querySelectorAll('.gauge'), (gauge) => ({
    scope: gauge.getAttribute('data-scope'), name: gauge.getAttribute('data-name'),
    utilization: gauge.getAttribute('data-utilization'), classes: Array.from(gauge.classList)})),
  overrides: Array.from(document.querySelectorAll('#overrides tbody tr[data-override-id]'),
                        (row) => row.getAttribute('data-override-id')),
  decisions: Array.from(document.querySelectorAll('#decisions tr'), (row) => row.textContent),
};
"""


def wait(driver, condition, message: str, timeout: float = WAIT):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(
        condition, message)


def page_at_version(driver, version: int) -> dict:
    """The page once a refresh has shown budget `version` (body[data-updated])."""
    def shown(d):
        page = d.execute_script(READ_PAGE)
        return page if page["updated"] == str(version) else False
    return wait(driver, shown, f"the page never showed budget version {version} in body[data-updated]")


def number(raw: str | None, what: str) -> float:
    assert raw is not None, f"{what} has no data-value"
    return float(raw)


def same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


# -- acting on the page --------------------------------------------------------------------


def fill_override_form(driver, *, scope: str, kind: str, target: str, reason: str, expires_in: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    form = driver.find_element(By.ID, "override-form")
    Select(form.find_element(By.CSS_SELECTOR, "select[name=scope]")).select_by_value(scope)
    Select(form.find_element(By.CSS_SELECTOR, "select[name=kind]")).select_by_value(kind)
    for name, text in (("target", target), ("reason", reason), ("expires_in", expires_in)):
        field_ = form.find_element(By.CSS_SELECTOR, f"input[name={name}]")
        field_.clear()
        field_.send_keys(text)


def type_token(driver, token: str) -> None:
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.ID, "token")
    box.clear()
    box.send_keys(token)


def type_operator(driver, name: str) -> None:
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.ID, "operator")
    box.clear()
    box.send_keys(name)


def submit_override(driver) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, "#override-form button[type=submit]").click()


def save_screenshots(driver) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "dashboard.png"
    assert driver.save_screenshot(str(path)), "the screenshot was not saved"
    width, height = driver.execute_script(
        "const e = document.documentElement;"
        "return [Math.max(e.scrollWidth, window.innerWidth), Math.max(e.scrollHeight, window.innerHeight)];")
    full = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
    (ARTIFACTS / "dashboard-full.png").write_bytes(base64.b64decode(full["data"]))
    print(f"dashboard screenshot: {path} (whole page: {ARTIFACTS / 'dashboard-full.png'})")
    return path


# -- the test ------------------------------------------------------------------------------


def test_the_dashboard_shows_the_sidecars_numbers_and_sets_an_override_that_takes_effect(browser, sidecar):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.alert import Alert
    from selenium.webdriver.common.by import By

    driver = browser
    with RiskBudgetClient(sidecar.target, admin_token=TOKEN) as client, diagnostics(driver, sidecar):
        # Arrange: fresh prices, a book with one symbol near its limit and one over it, two orders.
        prices = {s.symbol: s.last_price for s in client.get_budget().budget.symbols}
        client.publish_market_data([(symbol, price, time.time()) for symbol, price in prices.items()])
        limits = {s.symbol: s.max_position_notional for s in client.get_budget().budget.symbols}
        client.set_positions([
            ("equity_momentum", "SPY", round(0.9 * limits["SPY"] / prices["SPY"])),
            ("defensive_carry", "TLT", round(1.2 * limits["TLT"] / prices["TLT"])),
        ])
        approved = client.check_trade("browser-1", "equity_momentum", "IWM", "buy", 100)
        resized = client.check_trade("browser-2", "equity_momentum", "QQQ", "buy", 50_000)
        client.check_trade("browser-2", "equity_momentum", "QQQ", "buy", 50_000)  # a retry: replayed
        budget = client.get_budget().budget
        utilization = client.get_utilization()
        assert approved.decision == pb.DECISION_APPROVED, approved
        assert resized.decision == pb.DECISION_RESIZED, resized
        symbol_usage = {u.symbol: u for u in utilization.symbols}
        assert symbol_usage["SPY"].near_limit and not symbol_usage["SPY"].breached
        assert symbol_usage["TLT"].breached

        # Act: load the dashboard.
        driver.get(sidecar.url + "/")
        page = page_at_version(driver, budget.ref.version)

        # Assert: the page's numbers are the sidecar's.
        assert page["regime"] == pb.Regime.Name(budget.ref.regime).removeprefix("REGIME_")
        assert page["version"] in (str(budget.ref.version), f"v{budget.ref.version}"), page["version"]
        assert page["timeline"] == "svg", "#regime-timeline is not an SVG"
        strategies = {row["name"]: row for row in page["strategies"]}
        assert sorted(strategies) == sorted(s.strategy for s in budget.strategies)
        for expected in budget.strategies:
            row = strategies[expected.strategy]
            for column, value in (("capital", expected.allocated_capital), ("leverage", expected.leverage_limit),
                                  ("max_gross", expected.max_gross_exposure)):
                shown = number(row[column], f"{expected.strategy} {column}")
                assert same(shown, value), f"{expected.strategy} {column}: page {shown}, sidecar {value}"
        symbols = {row["name"]: row for row in page["symbols"]}
        assert sorted(symbols) == sorted(s.symbol for s in budget.symbols)
        for expected in budget.symbols:
            shown = number(symbols[expected.symbol]["max_notional"], f"{expected.symbol} max notional")
            assert same(shown, expected.max_position_notional), (
                f"{expected.symbol} max notional: page {shown}, sidecar {expected.max_position_notional}")
            shown = number(symbols[expected.symbol]["last_price"], f"{expected.symbol} last price")
            assert same(shown, expected.last_price), f"{expected.symbol} last price: page {shown}"

        gauges = {(g["scope"], g["name"] if g["scope"] != "total" else ""): g for g in page["gauges"]}
        expected_gauges = [("total", "", utilization.total.utilization, utilization.total.near_limit,
                            utilization.total.breached)]
        expected_gauges += [("strategy", s.strategy, s.usage.utilization, s.usage.near_limit, s.usage.breached)
                            for s in utilization.strategies]
        expected_gauges += [("symbol", s.symbol, s.utilization, s.near_limit, s.breached)
                            for s in utilization.symbols]
        for scope, name, fraction, near, breached in expected_gauges:
            gauge = gauges.get((scope, name))
            assert gauge is not None, f"no .gauge[data-scope={scope}][data-name={name}]"
            shown = number(gauge["utilization"], f"gauge {scope} {name}")
            assert same(shown, fraction), f"gauge {scope} {name}: page {shown}, sidecar {fraction}"
            classes = set(gauge["classes"])
            assert ("breached" in classes) == breached, f"gauge {scope} {name} classes {classes}"
            if not breached:
                assert ("near" in classes) == near, f"gauge {scope} {name} classes {classes}"
        assert "near" in set(gauges[("symbol", "SPY")]["classes"])
        assert "breached" in set(gauges[("symbol", "TLT")]["classes"])

        # Act: a jump in LQD's price, held back by the price screen.
        client.publish_market_data([("LQD", prices["LQD"] * 1.5, time.time())])

        # Assert: its row says the price checks use (found by a reviewer: `max qty` is at it).
        checked = f"(checked at {prices['LQD'] * 1.5:,.2f}: a tick held back)"
        wait(driver, lambda d: checked in d.find_element(By.CSS_SELECTOR, "#symbols tr[data-symbol='LQD'] "
                                                                          "td.last-price").text,
             f"LQD's last price does not say {checked!r}")
        wait(driver, lambda d: any("IWM" in row for row in d.execute_script(READ_PAGE)["decisions"]),
             "#decisions shows no row for the IWM order")
        qqq = [row for row in driver.execute_script(READ_PAGE)["decisions"] if "browser-2" in row]
        assert len(qqq) == 2 and sum("(replay)" in row for row in qqq) == 1, qqq  # a tester saw two alike
        response = driver.execute_script(
            "return document.querySelector('#success [data-metric=regime_response_p50]').textContent")
        assert list(client.get_status().regime_response_seconds) == []
        assert "no regime change since start" in response, response  # not "0.0 ms", found by a tester

        # Act: a wrong token is refused and changes nothing.
        type_token(driver, "not-the-token")
        fill_override_form(driver, scope="symbol", kind="restrict_symbol", target="EEM",
                           reason="browser e2e: wrong token", expires_in="600")
        submit_override(driver)
        wait(driver, lambda d: d.find_element(By.ID, "control-error").text.strip(),
             "#control-error shows nothing after a refused override")
        assert list(client.list_overrides().overrides) == []
        assert client.get_budget().budget.ref.version == budget.ref.version

        # Act: the right token, but no name: refused, naming the field (a tester found every
        # dashboard action recorded as done by "dashboard", no person).
        type_token(driver, TOKEN)
        fill_override_form(driver, scope="symbol", kind="restrict_symbol", target="EEM",
                           reason="browser e2e: nobody", expires_in="600")
        submit_override(driver)
        wait(driver, lambda d: "set_by" in d.find_element(By.ID, "control-error").text,
             "#control-error does not name set_by after an override with no name")
        assert list(client.list_overrides().overrides) == []

        # Act: the right token and a name set the override through the page.
        type_operator(driver, "Ada Operator")
        fill_override_form(driver, scope="symbol", kind="restrict_symbol", target="EEM",
                           reason="browser e2e", expires_in="600")
        submitted_at = time.time()
        submit_override(driver)
        override_id = wait(driver, lambda d: d.execute_script(READ_PAGE)["overrides"],
                           "#overrides shows no row after the override was submitted")[0]

        # Assert: over gRPC, the override is there and restricts EEM.
        overrides = list(client.list_overrides().overrides)
        restricted = client.check_trade("browser-3", "equity_momentum", "EEM", "buy", 10)
        after = client.get_budget().budget
        assert [o.id for o in overrides] == [override_id]
        assert overrides[0].scope == pb.OVERRIDE_SCOPE_SYMBOL
        assert overrides[0].kind == pb.OVERRIDE_KIND_RESTRICT_SYMBOL
        assert overrides[0].target == "EEM" and overrides[0].reason == "browser e2e"
        assert overrides[0].set_by == "Ada Operator"
        expiry = overrides[0].expires_at.ToSeconds()
        assert int(submitted_at) + 599 <= expiry <= time.time() + 600  # "expires in 600 s"
        assert restricted.decision == pb.DECISION_REJECTED, restricted
        assert pb.REASON_CODE_RESTRICTED_SYMBOL in [r.code for r in restricted.reasons]
        assert override_id in restricted.override_ids
        page_at_version(driver, after.ref.version)
        wait(driver, lambda d: any("browser-3" in row and "rejected" in row and "restricted symbol" in row
                                   for row in d.execute_script(READ_PAGE)["decisions"]),
             "#decisions shows no rejected row with its reason for the restricted EEM order")
        assert {s["name"]: s["source"].endswith(", restricted") for s in driver.execute_script(READ_PAGE)["symbols"]
                if s["name"] in ("EEM", "SPY")} == {"EEM": True, "SPY": False}
        save_screenshots(driver)

        # Act: clear it with its button (accepting a confirmation if the page asks for one).
        driver.find_element(By.CSS_SELECTOR, f"#overrides tbody tr[data-override-id='{override_id}'] button.clear"
                            ).click()

        def cleared(d):
            try:
                Alert(d).accept()
            except NoAlertPresentException:
                pass
            return override_id not in d.execute_script(READ_PAGE)["overrides"]
        wait(driver, cleared, "the override's row is still in #overrides after its clear button")

        # Assert: over gRPC, it is gone and EEM trades again.
        remaining = list(client.list_overrides().overrides)
        freed = client.check_trade("browser-4", "equity_momentum", "EEM", "buy", 10)
        assert remaining == []
        assert any(f"override {override_id} cleared by Ada Operator" in a.message
                   for a in client.list_alerts(min_severity="info").alerts)
        assert freed.decision == pb.DECISION_APPROVED, freed
        assert override_id not in freed.override_ids


def test_with_a_client_token_the_page_asks_for_a_token_and_the_read_token_shows_it_but_acts_on_nothing(
        browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver = browser
    tokens = {"RB_E2E_CLIENT_TOKEN": CLIENT_TOKEN, "RB_E2E_READ_TOKEN": READ_TOKEN}
    with serving(tmp_path, env=tokens, client_token_env="RB_E2E_CLIENT_TOKEN",
                 read_token_env="RB_E2E_READ_TOKEN") as sidecar, \
            RiskBudgetClient(sidecar.target, client_token=READ_TOKEN) as reader, diagnostics(driver, sidecar):
        version = reader.get_budget().budget.ref.version

        # Act: the page without a token.
        driver.get(sidecar.url + "/")

        # Assert: it says what it needs, and shows no figures.
        wait(driver, lambda d: "needs a token" in d.find_element(By.ID, "connection").text,
             "#connection does not say the status needs a token")
        assert driver.execute_script(READ_PAGE)["updated"] is None

        # Act: the read token, entered.
        type_token(driver, READ_TOKEN)
        driver.find_element(By.ID, "token").send_keys(Keys.ENTER)

        # Assert: the page shows the sidecar's budget, polling again.
        page = page_at_version(driver, version)
        assert page["strategies"]

        # Act: a control with the read token.
        type_operator(driver, "Ada Operator")
        driver.find_element(By.ID, "rebalance").click()

        # Assert: refused, naming the read token, and audited by an alert.
        wait(driver, lambda d: "read token" in d.find_element(By.ID, "control-error").text,
             "#control-error does not say the read token was refused")
        assert driver.find_element(By.ID, "control-error").text.startswith("refused")
        assert any(a.message.endswith("refused: read token") for a in reader.list_alerts(min_severity="info").alerts)

        # Act: a token the sidecar no longer takes (as after a rotation).
        type_token(driver, "rotated-out-token")

        # Assert: the figures are hidden, not left standing as if live (found by a tester).
        wait(driver, lambda d: "token refused" in d.find_element(By.ID, "connection").text,
             "#connection does not say the token was refused")
        assert driver.execute_script(READ_PAGE)["updated"] is None
        assert driver.execute_script(
            "return getComputedStyle(document.querySelector('#strategies').closest('.panel')).visibility "
            "+ ' ' + getComputedStyle(document.querySelector('#book-state')).visibility") == "hidden hidden"

        # Act: the sidecar stops, the read token entered again.
        type_token(driver, READ_TOKEN)
        driver.find_element(By.ID, "token").send_keys(Keys.ENTER)
        page_at_version(driver, version)
        sidecar.process.send_signal(signal.SIGTERM)
        sidecar.process.wait(timeout=15)

        # Assert: the figures are greyed out as not live.
        wait(driver, lambda d: "not live" in d.find_element(By.ID, "connection").text,
             "#connection does not say the figures are not live once the sidecar stopped")
        assert driver.execute_script("return document.body.classList.contains('stale')")
