"""HQ shows each site's last upgrade, as the site's sync status carries it from upgrades.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appliance.upgrade import UpgradeAttempt, UpgradeLog
from tests.integration.test_sync import start_aggregator, start_appliance
from tests.sync_env import make_env, wait_for


def _attempt(to_version: str, result: str, error_id: str = "") -> UpgradeAttempt:
    started = "2026-12-07T06:00:00+00:00"
    return UpgradeAttempt("0.1.0", to_version, result, error_id, "", started, started)


def test_hq_shows_the_last_upgrade_of_a_site_and_follows_a_new_one(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    log = UpgradeLog(tmp_path / "app")
    log.path.parent.mkdir(parents=True, exist_ok=True)
    log.append(_attempt("0.2.0", "upgraded"))
    agg = start_aggregator(env)
    app = start_appliance(env)

    def last_upgrade() -> dict[str, Any] | None:
        sites = env.api("/api/v1/sites")["sites"]
        found: dict[str, Any] | None = sites[0]["last_upgrade"] if sites else None
        return found

    try:
        wait_for(lambda: last_upgrade() is not None, 30, "the site's last upgrade at HQ")
        first = last_upgrade()
        log.append(_attempt("0.3.0", "rolled-back", "health-check-failed"))
        wait_for(lambda: (last_upgrade() or {}).get("to_version") == "0.3.0", 30, "the new attempt")
        second = last_upgrade()
    finally:
        app.close()
        agg.close()

    assert first == {
        "from_version": "0.1.0",
        "to_version": "0.2.0",
        "result": "upgraded",
        "error_id": "",
        "finished": "2026-12-07T06:00:00+00:00",
    }
    assert second is not None
    assert (second["result"], second["error_id"]) == ("rolled-back", "health-check-failed")
