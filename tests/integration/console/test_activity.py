"""The live activity page in headless Chromium follows a real call at a branch PBX.

A branch appliance (Kamailio, rtpengine, sync client) and the aggregator run as real
processes; two pjsua2 phones call each other while the page is open, and the page shows
the call in progress and its end without being reloaded.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from tests.integration.console.browser import Screens, chromium, sign_in_at, wait
from tests.integration.pbx.harness import Phone, connect_call, require_debs
from tests.integration.pbx.test_recordings_to_hq import running, with_pbx
from tests.sync_env import TOKEN, SyncEnv, make_env

pytestmark = pytest.mark.timeout(600)
LIVE_WAIT_S = 15  # a status within ~1 s of the change, then the page's next 2 s poll


@pytest.fixture
def env(tmp_path: Path) -> SyncEnv:
    require_debs()
    return make_env(tmp_path)


def calls_shown(driver: WebDriver, site_id: str) -> str:
    """The site's calls-in-progress cell, read in one step (htmx swaps the table)."""
    script = (
        "const c = document.querySelector(`tr[data-site='${arguments[0]}'] [data-calls]`);"
        "return c ? c.dataset.calls + '|' + document.getElementById('calls-total').textContent"
        " : ''"
    )
    return str(driver.execute_script(script, site_id))


def test_the_activity_page_shows_a_call_while_it_lasts(env: SyncEnv, tmp_path: Path) -> None:
    branch = with_pbx(env)
    screens = Screens(tmp_path / "screenshots")
    with running(env), chromium(tmp_path / "chromium-profile") as driver:
        sign_in_at(driver, f"{env.agg_url}/console/activity", TOKEN)
        wait(driver, lambda d: calls_shown(d, env.site_id) == "0|0", LIVE_WAIT_S)
        driver.execute_script("window.notReloaded = true")
        alice, bob = Phone(branch, "1001", 1000, tmp_path), Phone(branch, "1002", 600, tmp_path)
        try:
            assert (alice.registered(), bob.registered()) == (200, 200)
            connect_call(alice, bob)
            answered = time.monotonic()
            wait(driver, lambda d: calls_shown(d, env.site_id) == "1|1", LIVE_WAIT_S)
            shown_after = time.monotonic() - answered
            screens.take(driver, "activity-one-call")
            alice.send("hangup")
            bob.state("DISCONNECTED")
        finally:
            alice.close()
            bob.close()
        wait(driver, lambda d: calls_shown(d, env.site_id) == "0|0", LIVE_WAIT_S)
        assert driver.execute_script("return window.notReloaded === true"), "updated in place"
    print(f"\ncall shown {shown_after:.1f} s after it was answered; screenshots: {screens.folder}")
