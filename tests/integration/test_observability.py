"""What a NOC scrapes from real services: HQ, a SIM gateway on simulated modems and a branch
PBX (Kamailio, rtpengine). Every family passes promtool's lint, every callmesh family is
documented, no name carries a value, every dashboard query names metrics that exist, and
the health gauges move without anyone calling /healthz."""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from drivers.modem.simulator import ModemSimulator, SimulatorConfig
from tests.integration.observability_env import (
    Branch,
    family_names,
    gateway_config,
    promtool,
    require_tools,
    sample,
    scrape,
    sipp_unknown_number,
    stop,
)
from tests.integration.test_sync import start_aggregator, start_appliance
from tests.procs import ROOT, Service
from tests.sync_env import SyncEnv, make_env, wait_for

DOCS = ROOT / "docs" / "observability.md"
OBSERVABILITY = ROOT / "image" / "observability"
DASHBOARDS = OBSERVABILITY / "grafana"
DOC_NAME = re.compile(r"`(callmesh_[a-z0-9_]+)")
PROMQL_NAME = re.compile(r"\b([a-z_:][a-z0-9_:]*)\b(?!\s*\()")
# Words a PromQL expression holds besides metric names: keywords, label names, values.
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
    "and", "or", "unless", "le", "site", "channel", "iccid", "state", "step", "check",
    "disposition", "daemon", "outbox", "version", "reason", "error_id", "stream", "job",
    "queue", "outcome",
    "instance", "s", "m", "h", "d", "__interval", "__rate_interval", "__range",
}  # fmt: skip


@dataclass
class Deployment:
    env: SyncEnv
    branch: Branch
    simulator: ModemSimulator
    hq: Service
    gateway: Service
    pbx: Service
    iccids: dict[str, str]

    def scrapes(self) -> dict[str, str]:
        return {
            "hq": scrape(self.env.agg_url),
            "gateway": scrape(self.env.app_url),
            "branch": scrape(self.branch.url),
        }


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    require_tools()
    root = tmp_path_factory.mktemp("observed")
    config = SimulatorConfig(
        profile="quectel-ec25", count=2, sims=1, directory=str(root / "by-id"), reset_seconds=1.0
    )
    with ModemSimulator(config) as simulator:
        simulator.wait_booted(30)
        env = make_env(root / "gateway")
        gateway_config(env, simulator)
        (root / "branch").mkdir()
        branch = Branch.configure(root / "branch")
        iccids = {
            f"gsm-{m['index']}": m["sims"][0]["iccid"].rstrip("F")  # type: ignore[index]
            for m in simulator.info()
        }
        hq = start_aggregator(env)
        gateway = start_appliance(env)
        pbx = branch.start()
        try:
            yield Deployment(env, branch, simulator, hq, gateway, pbx, iccids)
        finally:
            for svc in (pbx, gateway, hq):
                stop(svc)


def test_every_family_passes_promtool_lint(deployment: Deployment) -> None:
    for service, text in deployment.scrapes().items():
        result = promtool("check", "metrics", stdin=text)
        assert result.returncode == 0, f"{service}: {result.stdout}{result.stderr}"
        assert result.stdout.strip() == "", f"{service}: {result.stdout}"


def test_every_callmesh_family_is_documented_and_no_name_carries_a_value(
    deployment: Deployment,
) -> None:
    documented = set(DOC_NAME.findall(DOCS.read_text()))
    for service, text in deployment.scrapes().items():
        names = family_names(text)
        exported = {n for n in names if n.startswith("callmesh_") and not n.endswith("_created")}
        undocumented = {n for n in exported if _base(n) not in documented}
        assert not undocumented, f"{service} exports undocumented {sorted(undocumented)}"
        values = {*deployment.iccids.values(), *deployment.iccids, "reopen", "reenumerate"}
        carrying = {n for n in exported for v in values if v.replace("-", "_") in n}
        assert not carrying, f"{service}: names embedding a value: {sorted(carrying)}"


def test_hq_reports_each_site_online_with_its_age_and_software(deployment: Deployment) -> None:
    site = deployment.env.site_id

    def online() -> bool:
        return sample(scrape(deployment.env.agg_url), f'callmesh_site_online{{site="{site}"}}') == 1

    wait_for(online, 30, "the gateway to be online at HQ", interval=0.5)
    text = scrape(deployment.env.agg_url)
    age = sample(text, f'callmesh_site_last_seen_age_seconds{{site="{site}"}}')
    assert age is not None
    assert 0 <= age < 60
    assert re.search(rf'callmesh_site_software_info\{{site="{site}",version="[^"]+"\}} 1\.0', text)


def test_gateway_reports_signal_registration_and_state_per_sim(deployment: Deployment) -> None:
    def registered() -> bool:
        text = scrape(deployment.env.app_url)
        return all(
            sample(text, f'callmesh_sim_registered{{channel="{c}",iccid="{i}"}}') == 1
            for c, i in deployment.iccids.items()
        )

    wait_for(registered, 30, "both SIMs registered in /metrics", interval=0.5)
    text = scrape(deployment.env.app_url)
    for channel, iccid in deployment.iccids.items():
        labels = f'channel="{channel}",iccid="{iccid}"'
        signal_dbm = sample(text, f"callmesh_sim_signal_dbm{{{labels}}}")
        assert signal_dbm is not None
        assert -113 <= signal_dbm <= -51
        assert sample(text, f"callmesh_sim_review_flagged{{{labels}}}") == 0
        assert sample(text, f'callmesh_modem_state{{channel="{channel}",state="ready"}}') == 1
        assert sample(text, f'callmesh_modem_state{{channel="{channel}",state="failed"}}') == 0
    assert sample(text, "callmesh_store_map_size_bytes") == 1024 * 1024 * 1024


def test_branch_counts_calls_by_disposition_and_times_route_decisions(
    deployment: Deployment, tmp_path: Path
) -> None:
    before = scrape(deployment.branch.url)
    failed = sample(before, 'callmesh_calls_total{disposition="failed"}')
    decisions = sample(before, "callmesh_route_decision_seconds_count")
    assert sample(before, 'callmesh_daemon_up{daemon="kamailio"}') == 1
    assert sample(before, 'callmesh_daemon_up{daemon="rtpengine"}') == 1
    assert sipp_unknown_number(deployment.branch, "9999", tmp_path).returncode == 0

    def counted() -> bool:
        text = scrape(deployment.branch.url)
        return sample(text, 'callmesh_calls_total{disposition="failed"}') == (failed or 0) + 1

    wait_for(counted, 20, "the refused call's CDR to be counted", interval=0.2)
    after = scrape(deployment.branch.url)
    assert sample(after, "callmesh_route_decision_seconds_count") == (decisions or 0) + 1
    assert sample(after, "callmesh_calls_active") == 0


def test_a_killed_kamailio_is_counted_as_a_restart(deployment: Deployment) -> None:
    os.kill(deployment.branch.daemon_pid("kamailio"), signal.SIGKILL)

    def restarted() -> bool:
        text = scrape(deployment.branch.url)
        return (
            sample(text, 'callmesh_daemon_restarts_total{daemon="kamailio"}') == 1
            and sample(text, 'callmesh_daemon_up{daemon="kamailio"}') == 1
        )

    wait_for(restarted, 60, "Kamailio's restart in /metrics", interval=0.5)


def test_health_gauges_follow_the_modems_without_any_healthz_call(
    deployment: Deployment,
) -> None:
    url = deployment.env.app_url
    assert sample(scrape(url), 'callmesh_health_check_ok{check="modems"}') == 1
    for index in (0, 1):
        deployment.simulator.unplug(index, replug_after=20.0)

    def failing() -> bool:
        text = scrape(url)
        return (
            sample(text, 'callmesh_health_check_ok{check="modems"}') == 0
            and sample(text, "callmesh_healthy") == 0
        )

    wait_for(failing, 30, "the modems check to fail in /metrics", interval=0.5)

    def recovered() -> bool:
        text = scrape(url)
        steps = sample(text, 'callmesh_modem_recovery_steps_total{channel="gsm-0",step="reopen"}')
        return sample(text, "callmesh_healthy") == 1 and (steps or 0) >= 1

    wait_for(recovered, 90, "the modems to recover, counted by step", interval=0.5)


def test_every_dashboard_and_alert_query_names_a_metric_that_exists(
    deployment: Deployment,
) -> None:
    scraped = set().union(*(family_names(t) for t in deployment.scrapes().values()))
    other_exporters = _other_exporters()
    used: dict[str, set[str]] = {}
    sources = {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}
    sources["alerts.yml"] = yaml.safe_load((OBSERVABILITY / "alerts.yml").read_text())
    assert len(sources) == 5, f"expected four dashboards and the alerts: {sorted(sources)}"
    for source, doc in sources.items():
        for expr in _expressions(doc):
            for name in _metric_names(expr):
                used.setdefault(name, set()).add(source)
    assert len(used) > 40, f"too few metric names found: {sorted(used)}"
    missing = {
        name: sorted(files)
        for name, files in used.items()
        if name not in scraped and name not in other_exporters
    }
    assert not missing, f"dashboards query metrics nobody exports: {missing}"


def _base(name: str) -> str:
    """A histogram's series are documented under its family name."""
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def _other_exporters() -> set[str]:
    """Metrics docs/observability.md names as coming from other exporters (its table)."""
    section = DOCS.read_text().split("## Metrics from other exporters", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`([a-z_:][a-z0-9_:]*)`", section))


def _expressions(node: object) -> Iterator[str]:
    """Every PromQL text: panel targets' and rules' ``expr``, query variables' ``query``."""
    if isinstance(node, dict):
        for key, value in node.items():
            promql = key == "expr" or (key == "query" and node.get("type") == "query")
            if promql and isinstance(value, str):
                yield value
            else:
                yield from _expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from _expressions(item)


def _metric_names(expr: str) -> set[str]:
    """Identifiers of a PromQL expression that are metric names (not functions, labels,
    keywords, strings or durations)."""
    bare = re.sub(r'"[^"]*"', '""', expr)
    bare = re.sub(r"\[[^\]]*\]", "", bare)
    bare = re.sub(r"\{[^}]*\}", "", bare)
    bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", bare)
    return {
        word
        for word in PROMQL_NAME.findall(bare)
        if word not in PROMQL_WORDS and not word.startswith("$") and not word.isdigit()
    }
