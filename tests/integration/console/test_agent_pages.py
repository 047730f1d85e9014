"""The appliance's agent and supervisor pages in headless Chromium, on a real contact
centre: Kamailio, rtpengine, two media workers and pjsua2 phones.

One appliance for the module. An agent signs in, logs in, pauses for lunch and resumes
(state seen on the page and in ``GET /contact/queues``); a caller who went through an IVR
flow waits while the agent is paused, and the supervisor page lists it; the agent resumes,
its page pops the caller with the flow's variables, updated in place as the agent answers;
the supervisor's Monitor button rings the supervisor's phone; the agent page's Hang up ends
the call; a second call is transferred to another extension from the agent page.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from tests.integration.console.browser import Screens, chromium, sign_in_at, wait
from tests.integration.pbx.contact_env import contact_pbx
from tests.integration.pbx.harness import (
    API_TOKEN,
    Pbx,
    media,
    phones,
    wait_for,
)

pytestmark = pytest.mark.timeout(600)
EXTENSIONS = {"1001": "Alice", "1002": "Bob", "1003": "Carol", "1004": "Dave"}
CONTACT = {
    "queues": {"support": {"number": "700", "agents": ["1003"], "ring_timeout_s": 30,
                           "wrapup_s": 1}},
    "supervisors": {"1002": {"queues": ["support"]}},
}  # fmt: skip
FRONT_DESK = {"start": "welcome", "nodes": {
    "welcome": {"type": "menu", "say": "Press 1 for support.", "options": {"1": "tag"},
                "timeout_s": 15, "retries": 0, "timeout": "bye"},
    "tag": {"type": "set", "vars": {"account": "A-{caller}"}, "next": "support"},
    "support": {"type": "queue", "queue": "support", "fallback": "1002"},
    "bye": {"type": "hangup"},
}}  # fmt: skip
CALL_S = 20


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    with contact_pbx(tmp_path_factory, "agent-pages", CONTACT, extensions=EXTENSIONS,
                     media=media(2), ivr={"flows": {"front": FRONT_DESK}}) as instance:  # fmt: skip
        yield instance


@pytest.fixture(scope="module")
def screens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Screens]:
    shots = Screens(tmp_path_factory.mktemp("agent-page-screenshots"))
    yield shots
    print(f"\nagent page screenshots ({len(shots.taken)}): {shots.folder}")


@pytest.fixture(scope="module")
def browser(site: Pbx, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        sign_in_at(driver, page(site, "agent/1003"), API_TOKEN)
        yield driver


def page(site: Pbx, path: str) -> str:
    return f"http://127.0.0.1:{site.api_port}/console/{path}"


def shown(driver: WebDriver, selector: str) -> str:
    """An element's text, read in one step (htmx swaps the live part every second)."""
    script = "const e = document.querySelector(arguments[0]); return e ? e.textContent : ''"
    text: str = driver.execute_script(script, selector)
    return " ".join(text.split())


def agent_state(site: Pbx) -> dict[str, Any]:
    status, answer = site.api("GET", "/contact/queues")
    assert status == 200, answer
    found: dict[str, Any] = answer["queues"][0]["agents"][0]
    return found


def click(driver: WebDriver, element_id: str) -> None:
    """Press a button outside the live part (htmx never replaces it)."""
    driver.find_element(By.ID, element_id).click()


def test_an_agent_logs_in_pauses_for_lunch_and_resumes(
    site: Pbx, browser: WebDriver, screens: Screens
) -> None:
    browser.get(page(site, "agent/1003"))
    wait(browser, lambda d: shown(d, "#agent-state").startswith("logged-out"))
    screens.take(browser, "agent-logged-out")
    click(browser, "login")
    wait(browser, lambda d: shown(d, "#notice") == "Logged in")
    assert shown(browser, "#agent-state") == "available"
    Select(browser.find_element(By.ID, "reason")).select_by_visible_text("lunch")
    click(browser, "pause")
    wait(browser, lambda d: shown(d, "#agent-state") == "paused lunch")
    assert (agent_state(site)["state"], agent_state(site)["reason"]) == ("paused", "lunch")
    screens.take(browser, "agent-paused")
    click(browser, "resume")
    wait(browser, lambda d: shown(d, "#agent-state") == "available")
    assert (agent_state(site)["state"], agent_state(site)["reason"]) == ("available", None)


def test_a_queued_caller_pops_on_the_agent_page_and_the_supervisor_listens_in(
    site: Pbx, browser: WebDriver, screens: Screens, tmp_path: Path
) -> None:
    specs = (("1001", 450), ("1002", 600), ("1003", 1000))
    with phones(site, tmp_path, *specs) as (alice, bob, carol):
        assert site.api("POST", "/contact/agents/1003/login")[0] == 200
        assert site.api("POST", "/contact/agents/1003/pause", {"reason": "meeting"})[0] == 200
        alice.send("call", to="ivr-front")
        alice.state("CONFIRMED")
        alice.send("dtmf", digits="1")
        browser.get(page(site, "queues?supervisor=1002"))
        caller_row = "[data-queue='support'] tr[data-caller='1001']"
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, caller_row), CALL_S)
        screens.take(browser, "queues-caller-waiting")
        browser.get(page(site, "agent/1003"))
        click(browser, "resume")
        wait(browser, lambda d: shown(d, "#notice") == "Available")
        browser.execute_script("window.notReloaded = true")
        wait(browser, lambda d: shown(d, "#pop-caller") == "1001", CALL_S)
        account = shown(browser, "[data-variable='account']")
        assert account == "A-1001", "the IVR flow's variable in the screen pop"
        assert shown(browser, "#pop-queue") == "support"
        screens.take(browser, "agent-ringing-screen-pop")
        carol.answer(timeout=CALL_S)
        wait(browser, lambda d: shown(d, "#agent-state") == "on-call", CALL_S)
        assert shown(browser, "#pop-caller") == "1001"
        assert browser.execute_script("return window.notReloaded === true"), "updated in place"
        browser.get(page(site, "queues?supervisor=1002"))
        monitor = "tr[data-agent='1003'] button[data-mode='monitor']"
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, monitor), CALL_S)
        browser.execute_script("document.querySelector(arguments[0]).click()", monitor)
        wait(browser, lambda d: shown(d, "#notice") == "Ringing 1002 to monitor 1003's call")
        incoming = bob.answer(timeout=CALL_S)
        assert "1003" in incoming["remote"]
        wait(browser, lambda d: "1002: monitor (joined)" in d.page_source, CALL_S)
        screens.take(browser, "queues-supervisor-joined")
        browser.get(page(site, "agent/1003"))
        click(browser, "hangup")
        wait(browser, lambda d: shown(d, "#notice") == "Hung up")
        for phone in (alice, carol, bob):
            phone.state("DISCONNECTED", timeout=CALL_S)


def test_the_agent_transfers_the_caller_to_another_extension(
    site: Pbx, browser: WebDriver, screens: Screens, tmp_path: Path
) -> None:
    specs = (("1001", 450), ("1003", 1000), ("1004", 300))
    with phones(site, tmp_path, *specs) as (alice, carol, dave):
        assert site.api("POST", "/contact/agents/1003/login")[0] == 200
        wait_for(lambda: agent_state(site)["state"] == "available", CALL_S, site.output)
        alice.send("call", to="700")
        alice.state("CONFIRMED")
        carol.answer(timeout=CALL_S)
        browser.get(page(site, "agent/1003"))
        wait(browser, lambda d: shown(d, "#agent-state") == "on-call", CALL_S)
        browser.find_element(By.ID, "transfer-to").send_keys("1004")
        click(browser, "transfer")
        wait(browser, lambda d: shown(d, "#notice") == "Transferring the caller to 1004")
        alice.wait(lambda e: e["ev"] == "transferring", CALL_S)
        incoming = dave.answer(timeout=CALL_S)
        assert "1001" in incoming["remote"]
        carol.state("DISCONNECTED", timeout=CALL_S)
        wait(browser, lambda d: shown(d, "#agent-state") in ("wrap-up", "available"), CALL_S)
        screens.take(browser, "agent-after-transfer")
        dave.send("hangup")
        dave.state("DISCONNECTED", timeout=CALL_S)
