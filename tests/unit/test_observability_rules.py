"""The shipped Prometheus rules and configuration pass promtool: syntax, the rules' own unit
tests (site offline, store nearly full, Kamailio down, modem recovering, queue service
level), the example config."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.procs import ROOT

HERE = ROOT / "image" / "observability"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.fail("missing promtool: apt-get install prometheus (./run test does this)")
    return subprocess.run(
        ["promtool", *args], capture_output=True, text=True, timeout=60, check=False, cwd=HERE
    )


def alert_names(path: Path) -> set[str]:
    doc = yaml.safe_load(path.read_text())
    return {rule["alert"] for group in doc["groups"] for rule in group["rules"]}


def test_alert_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_pass_their_promtool_unit_tests() -> None:
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rule_unit_tests_cover_site_offline_store_nearly_full_and_queue_service_level() -> None:
    doc = yaml.safe_load((HERE / "alerts_test.yml").read_text())
    tested = {case["alertname"] for test in doc["tests"] for case in test["alert_rule_test"]}
    assert {
        "CallmeshSiteOffline", "CallmeshStoreNearlyFull", "CallmeshQueueServiceLevelBreached",
    } <= tested  # fmt: skip
    assert tested <= alert_names(HERE / "alerts.yml")


def test_every_alert_the_issue_asks_for_is_there() -> None:
    assert {
        "CallmeshSiteOffline", "CallmeshBacklogGrowing", "CallmeshStoreNearlyFull",
        "CallmeshSimFlaggedForReview", "CallmeshModemRecovering", "CallmeshKamailioDown",
        "CallmeshRtpengineDown", "CallmeshQueueServiceLevelBreached",
    } <= alert_names(HERE / "alerts.yml")  # fmt: skip


def test_example_config_passes_promtool_and_scrapes_hq_and_every_site() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = {
        j["job_name"]: j
        for j in yaml.safe_load((HERE / "prometheus.yml").read_text())["scrape_configs"]
    }
    hq = jobs["callmesh-hq"]["static_configs"]
    assert all("site" not in group.get("labels", {}) for group in hq)
    sites = jobs["callmesh-sites"]["static_configs"]
    assert all(group["labels"]["site"] for group in sites)
    assert jobs["callmesh-sites"]["file_sd_configs"][0]["files"] == ["sites.yml"]
