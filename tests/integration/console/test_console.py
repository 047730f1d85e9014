"""The HQ console in headless Chromium against a real aggregator fed by a real appliance.

Screenshots of every page at desktop and phone widths are kept under the test's tmp dir;
the path is printed (run with ``-s`` to see it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.integration.console import deployment
from tests.integration.console.browser import Screens, chromium, left, wait
from tests.integration.console.deployment import TOKENS, Deployment
from tests.integration.sim.gateway import ICCIDS
from tests.integration.sim.test_sim_gateway import APP_TOKEN
from tests.procs import callmesh
from tests.sync_env import SyncEnv, wait_for

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def hq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    running = deployment.start(tmp_path_factory.mktemp("deployment"))
    yield running
    running.close()


@pytest.fixture(scope="module")
def screens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Screens]:
    shots = Screens(tmp_path_factory.mktemp("screenshots"))
    yield shots
    print(f"\nconsole screenshots ({len(shots.taken)}): {shots.folder}")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    with chromium(tmp_path / "chromium-profile") as driver:
        yield driver


def sign_in(driver: WebDriver, hq: Deployment, role: str) -> None:
    driver.get(f"{hq.console}/sites")
    wait(driver, lambda d: d.find_elements(By.ID, "token"))
    driver.find_element(By.ID, "token").send_keys(TOKENS[role])
    driver.find_element(By.ID, "sign-in").click()
    wait(driver, lambda d: d.find_elements(By.ID, "sign-out"))


def text_of(driver: WebDriver, element_id: str) -> str:
    """The element's text read in one step (htmx may swap it between two WebDriver calls)."""
    script = "const e = document.getElementById(arguments[0]); return e ? e.textContent : ''"
    return str(driver.execute_script(script, element_id))


def refusal(driver: WebDriver) -> str:
    found = driver.find_elements(By.ID, "refusal")
    return found[0].get_attribute("data-error-id") or "" if found else ""


def submit_form(
    driver: WebDriver, form_id: str, values: dict[str, str], navigates: bool = True
) -> None:
    """Fill and submit a form; unless htmx handles it, wait for the next page."""
    page = driver.find_element(By.TAG_NAME, "html")
    form = driver.find_element(By.ID, form_id)
    for name, value in values.items():
        field = form.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    if navigates:
        wait(driver, left(page))


def test_an_admin_searches_plays_changes_a_sim_limit_edits_the_directory_and_signs_out(
    hq: Deployment, browser: WebDriver, screens: Screens
) -> None:
    browser.get(f"{hq.console}/sites")
    assert browser.current_url.endswith("/console/sign-in")
    screens.take(browser, "sign-in")
    sign_in(browser, hq, "admin")
    site = browser.find_element(By.CSS_SELECTOR, "tr[data-site='site-a']")
    assert "online" in site.text
    assert str(deployment.CDR_COUNT) in site.text
    screens.take(browser, "sites")

    search_and_play(browser, hq, screens)
    show_reports(browser, hq, screens)
    change_a_sim_limit(browser, hq, screens)
    edit_the_directory(browser, hq, screens)
    see_the_site_in_its_region(browser, hq, screens)
    add_to_the_dnc_list(browser, hq, screens)

    browser.find_element(By.ID, "sign-out").click()
    wait(browser, lambda d: d.find_elements(By.ID, "token"))
    browser.get(f"{hq.console}/cdrs")
    assert browser.current_url.endswith("/console/sign-in")


def search_and_play(browser: WebDriver, hq: Deployment, screens: Screens) -> None:
    browser.get(f"{hq.console}/cdrs")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#cdrs tbody tr")) == deployment.CDR_COUNT
    screens.take(browser, "calls")
    submit_form(browser, "cdr-search", {"number": hq.played_number}, navigates=False)
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#cdrs tbody tr")) == 1)
    assert "number=" in browser.current_url  # htmx pushed the search into the address
    audio = browser.find_element(By.CSS_SELECTOR, "audio[data-recording]")
    browser.execute_script("arguments[0].muted = true; arguments[0].play();", audio)
    duration = wait(
        browser,
        lambda d: d.execute_script(
            "const a = arguments[0]; return a.readyState >= 1 && a.duration > 0 && a.duration",
            audio,
        ),
    )
    assert duration == pytest.approx(deployment.RECORDING_S, abs=0.05)
    wait(browser, lambda d: d.execute_script("return arguments[0].currentTime > 0", audio))
    assert browser.execute_script("return arguments[0].error", audio) is None
    screens.take(browser, "calls-search")


def show_reports(browser: WebDriver, hq: Deployment, screens: Screens) -> None:
    browser.get(f"{hq.console}/reports?from=2025-11-24&to=2025-11-25")
    wait(browser, lambda d: d.execute_script("return document.body.dataset.chartsDrawn"))
    per_site = browser.find_element(By.CSS_SELECTOR, "#by-site tbody tr").text.split()
    answered = sum(
        1 for n in range(deployment.CDR_COUNT) if n % 4 and n not in deployment.NOT_ANSWERED
    )
    assert per_site[:3] == ["site-a", str(deployment.CDR_COUNT), str(answered)]
    assert browser.find_elements(By.CSS_SELECTOR, "#by-trunk tbody tr")
    (times,) = browser.find_elements(By.CSS_SELECTOR, "#answer-times tbody tr")
    # Waits of 0, 14, 28, 42 and 56 s in the buckets 0-5, 5-10, 10-20, 20-30, 30-60, ...
    assert times.text.split() == ["site-a", "support", "2025-11-24", "5",
                                  "1", "0", "1", "1", "2", "0", "0"]  # fmt: skip
    lost = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "#lost-calls tbody tr")]
    assert len(lost) == len(deployment.QUEUED) // 2
    assert "abandoned yes (call," in lost[0]
    # the last one was followed only by a callback whose one try failed
    assert lost[-1].endswith("abandoned no failed, 1 try")
    screens.take(browser, "reports")


def change_a_sim_limit(browser: WebDriver, hq: Deployment, screens: Screens) -> None:
    browser.get(f"{hq.console}/sims")
    screens.take(browser, "sims")
    browser.find_element(By.LINK_TEXT, ICCIDS[0]).click()
    wait(browser, lambda d: d.find_elements(By.ID, "limits-form"))
    submit_form(browser, "limits-form", {"calls_per_day": "-1"})
    error = browser.find_element(By.CSS_SELECTOR, "#limits-form .field.invalid")
    assert error.find_element(By.NAME, "calls_per_day")
    assert "greater than or equal to 0" in error.find_element(By.CLASS_NAME, "error").text

    submit_form(browser, "limits-form", {"calls_per_day": "7", "max_call_s": "900"})

    def applied(driver: WebDriver) -> bool:
        done = "applied" in text_of(driver, "last-command")
        if done and "calls_per_day=7" in text_of(driver, "limits-in-force"):
            return True
        if done:
            driver.refresh()  # applied; the site's next status report carries the limits
        return False

    wait(browser, applied, 60)
    assert "max_call_s=900" in text_of(browser, "limits-in-force")
    browser.refresh()
    shown = browser.find_element(By.NAME, "calls_per_day").get_attribute("value")
    assert shown == "7"  # the form starts from the limits the site reports
    screens.take(browser, "sim")


def edit_the_directory(browser: WebDriver, hq: Deployment, screens: Screens) -> None:
    browser.get(f"{hq.console}/directory")
    browser.find_element(By.ID, "add-sites").click()
    wait(browser, lambda d: d.find_elements(By.ID, "entry-form"))
    entry = {"id": "site-a", "sip_address": "not an address!", "timezone": "Europe/Berlin"}
    submit_form(browser, "entry-form", entry)
    field = browser.find_element(By.CSS_SELECTOR, "#entry-form .field.invalid")
    assert field.find_element(By.NAME, "sip_address")
    assert "not valid here: host or IP" in field.find_element(By.CLASS_NAME, "error").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#entry-form .field.invalid")) == 1
    screens.take(browser, "directory-error")

    fixed = {"sip_address": "10.1.0.1", "extensions": "100, 101", "region": "eu-central"}
    submit_form(browser, "entry-form", fixed)
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#dir-sites tr[data-entry='site-a']"))
    screens.take(browser, "directory")

    browser.find_element(By.ID, "add-trunks").click()
    wait(browser, lambda d: d.find_elements(By.ID, "entry-form"))
    submit_form(browser, "entry-form", {"id": "gsm-1", "site": "nowhere", "numbers": "+4930100"})
    problems = browser.find_element(By.ID, "form-problems").text
    assert "nowhere" in problems  # a problem of the whole directory, above the form
    screens.take(browser, "directory-problem")


def see_the_site_in_its_region(browser: WebDriver, hq: Deployment, screens: Screens) -> None:
    browser.get(f"{hq.console}/sites")
    tile = browser.find_element(By.CSS_SELECTOR, ".region[data-region='eu-central']")
    assert "1 site" in tile.text
    assert "1 online" in tile.text
    tile.click()
    wait(browser, lambda d: d.find_elements(By.ID, "region-shown"))
    assert browser.current_url.endswith("/console/sites?region=eu-central")
    shown = browser.find_elements(By.CSS_SELECTOR, "#sites tr[data-site]")
    assert [r.get_attribute("data-region") for r in shown] == ["eu-central"]
    screens.take(browser, "sites-by-region")


def add_to_the_dnc_list(browser: WebDriver, hq: Deployment, screens: Screens) -> None:
    browser.get(f"{hq.console}/dnc")
    submit_form(browser, "dnc-add", {"number": "+49 30 555-0100", "reason": "asked by letter"})
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-number='+49305550100']"))
    screens.take(browser, "dnc")


def test_a_site_viewer_cannot_see_another_site(
    hq: Deployment, browser: WebDriver, screens: Screens
) -> None:
    sign_in(browser, hq, "site-viewer")
    assert not browser.find_elements(By.CSS_SELECTOR, "tr[data-site]")
    assert not browser.find_elements(By.CSS_SELECTOR, ".region[data-region]")
    browser.get(f"{hq.console}/cdrs")
    assert not browser.find_elements(By.CSS_SELECTOR, "#cdrs tbody tr")
    for path in (
        "/cdrs?site=site-a",
        f"/recordings/site-a/{deployment.RECORDING_ID}",
        f"/sims/{ICCIDS[0]}",
        "/reports?site=site-a",
        "/sites/site-a",
    ):
        browser.get(f"{hq.console}{path}")
        assert refusal(browser) == "site-forbidden", path
    screens.take(browser, "refused")
    browser.get(f"{hq.console}/sims")
    assert not browser.find_elements(By.CSS_SELECTOR, "tr[data-iccid]")
    browser.get(f"{hq.console}/dnc")
    assert not browser.find_elements(By.ID, "dnc-add")


POST_DNC = """
const done = arguments[arguments.length - 1];
const body = new URLSearchParams({number: arguments[0]});
if (arguments[1] !== null) body.set("csrf_token", arguments[1]);
fetch("/console/dnc", {method: "POST", body: body, redirect: "manual"})
  .then(r => done(r.status), e => done(String(e)));
"""


def test_a_post_without_the_session_csrf_token_is_refused(
    hq: Deployment, browser: WebDriver
) -> None:
    sign_in(browser, hq, "admin")
    browser.get(f"{hq.console}/dnc")
    token = browser.find_element(By.NAME, "csrf_token").get_attribute("value")
    assert browser.execute_async_script(POST_DNC, "+4930999001", None) == 403
    assert browser.execute_async_script(POST_DNC, "+4930999002", "forged") == 403
    assert browser.execute_async_script(POST_DNC, "+4930999003", token) == 0  # opaque redirect
    browser.refresh()
    listed = {e.get_attribute("data-number") for e in browser.find_elements(By.CSS_SELECTOR, "tr")}
    assert "+4930999003" in listed
    assert not {"+4930999001", "+4930999002"} & listed


def doctor_at_hq(env: SyncEnv) -> dict[str, Any]:
    """The site's report as HQ's API serves it; empty while HQ holds none."""
    try:
        return dict(env.api(f"/api/v1/sites/{env.site_id}/doctor"))
    except httpx.HTTPStatusError:
        return {}


def test_the_site_page_shows_the_newest_doctor_report_the_site_sent(
    hq: Deployment, browser: WebDriver, screens: Screens
) -> None:
    env = hq.env
    wait_for(lambda: doctor_at_hq(env).get("source") == "scheduled", 90, "the box's own report")
    ran = callmesh("doctor", "--config", str(env.app_config), "--upload", "--json", timeout=120)
    assert "upload: queued for HQ" in ran.stderr, ran.stderr
    sent = json.loads(ran.stdout)
    at_ms = int(sent["at"] * 1000)
    wait_for(lambda: doctor_at_hq(env).get("at_ms") == at_ms, 60, "the CLI's report at HQ")
    held = doctor_at_hq(env)
    assert held["source"] == "cli"
    assert [f["check"] for f in held["findings"]] == [f["check"] for f in sent["findings"]]
    assert (held["status"], held["counts"]) == (sent["status"], sent["counts"])

    older = {**sent, "at": sent["at"] - 3600}
    answer = httpx.post(
        f"{env.app_url}/api/v1/doctor/report",
        json=older,
        headers={"Authorization": f"Bearer {APP_TOKEN}"},
        timeout=10,
    )
    assert answer.json()["queued"] is False

    sign_in(browser, hq, "hq-viewer")
    browser.get(f"{hq.console}/sites")
    browser.find_element(By.CSS_SELECTOR, "tr[data-site='site-a'] a").click()
    wait(browser, lambda d: d.find_elements(By.ID, "doctor"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#doctor tr[data-check]")
    assert [r.get_attribute("data-check") for r in rows] == [f["check"] for f in sent["findings"]]
    for row, finding in zip(rows, sent["findings"], strict=True):
        assert row.get_attribute("data-status") == finding["status"]
        assert finding["next_step"] in row.text
    summary = browser.find_element(By.ID, "doctor-summary")
    assert summary.get_attribute("data-status") == sent["status"]
    assert "by callmesh doctor" in summary.text
    assert text_of(browser, "doctor-age").endswith(("s", "min"))
    screens.take(browser, "site")
