"""The wallboard in headless Chromium follows a real caller waiting in a real ACD queue.

A branch appliance (Kamailio, rtpengine, a media worker, the contact centre and the sync
client) and the aggregator run as real processes; a pjsua2 phone dials the queue while
no agent is logged in, and the page shows the caller waiting, then, once it hangs up,
the queue empty and the call abandoned, without being reloaded.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from selenium.webdriver.remote.webdriver import WebDriver

from tests.integration.console.browser import Screens, chromium, sign_in_at, wait
from tests.integration.pbx.harness import Phone, media, require_debs
from tests.integration.pbx.test_recordings_to_hq import Branch, running, with_pbx
from tests.procs import write_yaml
from tests.sync_env import TOKEN, SyncEnv, make_env

pytestmark = pytest.mark.timeout(600)
LIVE_WAIT_S = 15  # a status within ~1 s of the change, then the page's next 1 s poll
CONTACT = {"queues": {"support": {"number": "700", "agents": ["1003"], "max_wait_s": 300}}}


@pytest.fixture
def env(tmp_path: Path) -> SyncEnv:
    require_debs()
    return make_env(tmp_path)


def with_queue(env: SyncEnv) -> Branch:
    """A branch PBX with a media worker and the ``support`` queue (agent 1003, logged out)."""
    branch = with_pbx(env)
    config: dict[str, Any] = yaml.safe_load(env.app_config.read_text())
    config["pbx"]["media"] = media(1)
    config["contact"] = CONTACT
    write_yaml(env.app_config, config)
    return branch


def board(driver: WebDriver, site_id: str) -> str:
    """``waiting|abandoned|logged-out agents|total`` of the queue, read in one step."""
    script = (
        "const q = document.querySelector(`[data-site='${arguments[0]}'][data-queue='support']`);"
        "if (!q) return '';"
        "const v = (s) => q.querySelector(s).textContent.trim();"
        "return [v('[data-stat=waiting]'), v('[data-stat=abandoned]'),"
        " v(\"[data-agents='logged-out']\"), document.getElementById('waiting-total').textContent]"
        ".join('|')"
    )
    return str(driver.execute_script(script, site_id))


def test_the_wallboard_shows_a_caller_waiting_then_abandoning(env: SyncEnv, tmp_path: Path) -> None:
    branch = with_queue(env)
    screens = Screens(tmp_path / "screenshots")
    with running(env), chromium(tmp_path / "chromium-profile") as driver:
        sign_in_at(driver, f"{env.agg_url}/console/wallboard", TOKEN)
        wait(driver, lambda d: board(d, env.site_id) == "0|0|1|0", LIVE_WAIT_S)
        driver.execute_script("window.notReloaded = true")
        alice = Phone(branch, "1001", 450, tmp_path)
        try:
            assert alice.registered() == 200
            alice.send("call", to="700")
            alice.state("CONFIRMED")
            queued = time.monotonic()
            wait(driver, lambda d: board(d, env.site_id) == "1|0|1|1", LIVE_WAIT_S)
            shown_after = time.monotonic() - queued
            screens.take(driver, "wallboard-caller-waiting")
            alice.send("hangup")
            alice.state("DISCONNECTED")
        finally:
            alice.close()
        wait(driver, lambda d: board(d, env.site_id) == "0|1|1|0", LIVE_WAIT_S)
        assert driver.execute_script("return window.notReloaded === true"), "updated in place"
    print(f"\ncaller shown {shown_after:.1f} s after entering the queue; {screens.folder}")
