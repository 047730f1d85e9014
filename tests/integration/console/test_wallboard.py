"""The wallboard in headless Chromium follows real callers in a real ACD queue.

A branch appliance (Kamailio, rtpengine, a media worker, the contact centre and the sync
client) and the aggregator run as real processes. The periodic status is slowed to a
minute, so only the live status part (sent within about a second of a change) can move
the page in time. A pjsua2 phone dials the queue while no agent is logged in: the page
shows it waiting, then, once it hangs up, the queue empty and the call abandoned. A
second caller waits until the agent logs in and answers on its phone: the page shows it
answered, the agent talking and the service level, all without being reloaded. HQ's
/metrics shows the same values per site and queue at each step.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from selenium.webdriver.remote.webdriver import WebDriver

from tests.integration.console.browser import Screens, chromium, sign_in_at, wait
from tests.integration.observability_env import promtool, sample, scrape
from tests.integration.pbx.harness import API_TOKEN, Phone, media, require_debs
from tests.integration.pbx.test_recordings_to_hq import Branch, running, with_pbx
from tests.procs import write_yaml
from tests.sync_env import TOKEN, SyncEnv, make_env, wait_for

pytestmark = pytest.mark.timeout(600)
LIVE_WAIT_S = 15  # a status within ~1 s of the change, then the page's next 1 s poll
CONTACT = {"queues": {"support": {"number": "700", "agents": ["1003"], "max_wait_s": 300,
                                  "service_level_s": 60, "wrapup_s": 1}}}  # fmt: skip


@pytest.fixture
def env(tmp_path: Path) -> SyncEnv:
    require_debs()
    return make_env(tmp_path, status_interval_s=60)


def with_queue(env: SyncEnv) -> Branch:
    """A branch PBX with a media worker and the ``support`` queue (agent 1003, logged out)."""
    branch = with_pbx(env)
    config: dict[str, Any] = yaml.safe_load(env.app_config.read_text())
    config["pbx"]["media"] = media(1)
    config["contact"] = CONTACT
    config["api"] = {"tokens": [{"name": "ops", "token": API_TOKEN, "role": "operator"}]}
    write_yaml(env.app_config, config)
    return branch


def board(driver: WebDriver, site_id: str) -> dict[str, str]:
    """The support queue's numbers as shown, read in one step (htmx swaps the board)."""
    script = (
        "const q = document.querySelector(`[data-site='${arguments[0]}'][data-queue='support']`);"
        "if (!q) return {};"
        "const found = {total: document.getElementById('waiting-total').textContent};"
        "for (const e of q.querySelectorAll('[data-stat], [data-agents]'))"
        " found[e.dataset.stat || e.dataset.agents] = e.textContent.trim();"
        "return found"
    )
    found: dict[str, str] = driver.execute_script(script, site_id)
    return found


def shows(driver: WebDriver, env: SyncEnv, **expected: str) -> bool:
    shown = board(driver, env.site_id)
    return all(shown.get(key.replace("_", "-")) == value for key, value in expected.items())


def log_in(env: SyncEnv, agent: str) -> None:
    answer = httpx.post(
        f"{env.app_url}/api/v1/contact/agents/{agent}/login",
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


def scraped(env: SyncEnv, **expected: float) -> dict[str, float | None]:
    """The support queue's series in HQ's /metrics, once they hold ``expected``."""
    labels = f'queue="support",site="{env.site_id}"'  # as the scrape writes them: sorted
    series = {
        "waiting": f"callmesh_queue_callers_waiting{{{labels}}}",
        "longest_wait": f"callmesh_queue_longest_wait_seconds{{{labels}}}",
        "logged_out": f'callmesh_queue_agents{{{labels},state="logged-out"}}',
        "on_call": f'callmesh_queue_agents{{{labels},state="on-call"}}',
        "answered": f'callmesh_queue_calls_today{{outcome="answered",{labels}}}',
        "abandoned": f'callmesh_queue_calls_today{{outcome="abandoned",{labels}}}',
        "level": f"callmesh_queue_service_level_ratio{{{labels}}}",
        "threshold": f"callmesh_queue_service_level_threshold_seconds{{{labels}}}",
    }
    found: dict[str, float | None] = {}

    def holds() -> bool:
        text = scrape(env.agg_url)
        found.update({key: sample(text, name) for key, name in series.items()})
        return all(found[key] == value for key, value in expected.items())

    try:
        wait_for(holds, LIVE_WAIT_S, f"HQ's /metrics to show {expected}", interval=0.5)
    except AssertionError as err:
        raise AssertionError(f"{err}; last scrape: {found}") from None
    return found


def test_the_wallboard_follows_callers_waiting_abandoning_and_answered(
    env: SyncEnv, tmp_path: Path
) -> None:
    branch = with_queue(env)
    screens = Screens(tmp_path / "screenshots")
    with running(env), chromium(tmp_path / "chromium-profile") as driver:
        sign_in_at(driver, f"{env.agg_url}/console/wallboard", TOKEN)
        wait(driver, lambda d: shows(d, env, waiting="0", logged_out="1", total="0"), LIVE_WAIT_S)
        driver.execute_script("window.notReloaded = true")
        alice = Phone(branch, "1001", 450, tmp_path)
        bob = Phone(branch, "1002", 600, tmp_path)
        carol = Phone(branch, "1003", 1000, tmp_path)
        try:
            assert (alice.registered(), bob.registered(), carol.registered()) == (200,) * 3
            alice.send("call", to="700")
            alice.state("CONFIRMED")
            queued = time.monotonic()
            wait(driver, lambda d: shows(d, env, waiting="1", total="1"), LIVE_WAIT_S)
            shown_after = time.monotonic() - queued
            screens.take(driver, "wallboard-caller-waiting")
            waiting = scraped(env, waiting=1, logged_out=1, threshold=60)
            assert (waiting["longest_wait"] or 0) > 0
            assert waiting["level"] is None, "no service level before the day's first outcome"
            alice.send("hangup")
            alice.state("DISCONNECTED")
            wait(driver, lambda d: shows(d, env, waiting="0", abandoned="1"), LIVE_WAIT_S)
            assert board(driver, env.site_id)["service-level"] == "0%"
            bob.send("call", to="700")
            bob.state("CONFIRMED")
            wait(driver, lambda d: shows(d, env, waiting="1"), LIVE_WAIT_S)
            log_in(env, "1003")
            carol.answer()
            wait(driver, lambda d: shows(d, env, waiting="0", answered="1", on_call="1"),
                 LIVE_WAIT_S)  # fmt: skip
            screens.take(driver, "wallboard-caller-answered")
            assert board(driver, env.site_id)["service-level"] == "50%"
            scraped(env, waiting=0, longest_wait=0, on_call=1, answered=1, abandoned=1, level=0.5)
            linted = promtool("check", "metrics", stdin=scrape(env.agg_url))
            assert (linted.returncode, linted.stdout.strip()) == (0, ""), linted.stdout
            carol.send("hangup")
            carol.state("DISCONNECTED")
        finally:
            for phone in (alice, bob, carol):
                phone.close()
        assert driver.execute_script("return window.notReloaded === true"), "updated in place"
    print(f"\ncaller shown {shown_after:.1f} s after entering the queue; {screens.folder}")
