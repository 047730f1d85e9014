"""`callmesh hq` as a user runs it: a subprocess against a real aggregator fed by a real appliance.

The deployment is the console tests' (tests/integration/console/deployment.py): 40 CDRs of
site-a, one with a two-channel recording, and a SIM gateway's three SIMs.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import io
import json
import os
import subprocess
import sys
import wave
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openpyxl import load_workbook

from tests.integration.console import deployment
from tests.integration.console.deployment import CDR_COUNT, RECORDING_ID, TOKENS, Deployment
from tests.integration.sim.gateway import ICCIDS
from tests.procs import ROOT

pytestmark = pytest.mark.timeout(600)
SITE = "site-a"
DAY = ("--from", "2025-11-24", "--to", "2025-11-25")


@pytest.fixture(scope="module")
def hq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    running = deployment.start(tmp_path_factory.mktemp("deployment"))
    yield running
    running.close()


def callmesh_hq(
    hq: Deployment,
    *args: str,
    role: str | None = "admin",
    token: str | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `callmesh hq ARGS` with HQ's URL and a role's (or this) token in the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLMESH_HQ_")}
    env.update(PYTHONPATH=str(ROOT), HOME=str(cwd or ROOT), CALLMESH_HQ_URL=hq.env.agg_url)
    if role is not None or token is not None:
        env["CALLMESH_HQ_TOKEN"] = token or TOKENS[str(role)]
    command = [sys.executable, "-m", "appliance.cli.main", "hq", *args]
    return subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_sites_list_as_a_table_and_as_json(hq: Deployment) -> None:
    table = ok(callmesh_hq(hq, "sites", "list"))
    header, rule, row = table.splitlines()[:3]
    assert header.split()[:4] == ["site_id", "status", "calls_active", "last_seen"]
    assert set(rule.replace(" ", "")) == {"-"}
    assert row.split()[:2] == [SITE, "online"]
    sites = json.loads(ok(callmesh_hq(hq, "sites", "list", "--json")))
    assert [s["site_id"] for s in sites] == [SITE]
    shown = ok(callmesh_hq(hq, "sites", "show", SITE))
    fields = dict(line.split(maxsplit=1) for line in shown.splitlines() if " " in line.strip())
    assert fields["site_id"] == SITE
    assert float(fields["health.store_used_percent"]) >= 0


def test_cdr_search_pages_through_every_call_and_says_when_more_match(hq: Deployment) -> None:
    first = callmesh_hq(hq, "cdrs", "search", "--site", SITE, "--limit", "5")
    assert len(ok(first).splitlines()) == 2 + 5
    assert "more calls match" in first.stderr
    every = json.loads(ok(callmesh_hq(hq, "cdrs", "search", "--all", "--json")))
    assert len(every) == CDR_COUNT
    assert len({c["cdr_id"] for c in every}) == CDR_COUNT
    played = json.loads(
        ok(callmesh_hq(hq, "cdrs", "search", "--number", hq.played_number, "--json"))
    )
    assert [c["recording_id"] for c in played] == [RECORDING_ID]
    assert played[0]["recording"]["state"] == "available"


def test_cdr_export_as_xlsx_reads_back_with_typed_cells(hq: Deployment, tmp_path: Path) -> None:
    out = tmp_path / "calls.xlsx"
    done = callmesh_hq(hq, "cdrs", "search", "--all", "--xlsx", str(out))
    assert f"wrote {CDR_COUNT} rows" in ok(done) + done.stderr
    sheet = load_workbook(out)["cdrs"]
    rows = list(sheet.iter_rows(values_only=True))
    header, body = rows[0], rows[1:]
    assert len(body) == CDR_COUNT
    record = dict(zip(header, body[0], strict=True))
    assert record["site_id"] == SITE
    assert record["caller_number"] == "+4930100"  # text, not a formula or a number
    assert record["duration_s"] == 65  # a number, not text
    assert "recording.state" in header


def test_cdr_export_as_csv_is_neutralised_against_formulas(hq: Deployment) -> None:
    text = ok(callmesh_hq(hq, "cdrs", "search", "--limit", "3", "--csv", "-"))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 3
    assert rows[0]["caller_number"] == "'+4930100"


def test_sim_usage_is_what_the_api_reports_per_sim_and_day(hq: Deployment) -> None:
    today = datetime.datetime.now(datetime.UTC).date()
    first, last = (today - datetime.timedelta(days=30)).isoformat(), today.isoformat()
    days = ("--from", first, "--to", last)
    rows = json.loads(ok(callmesh_hq(hq, "report", "sim-usage", *days, "--site", SITE, "--json")))
    usage = "/api/v1/fleet/reports/usage"
    assert rows == hq.env.api(usage, None, site=SITE, **{"from": first, "to": last})["rows"]
    assert {r["iccid"] for r in rows} <= set(ICCIDS)


def test_reports_sum_to_the_calls_at_hq(hq: Deployment, tmp_path: Path) -> None:
    days = json.loads(ok(callmesh_hq(hq, "report", "summary", *DAY, "--json")))
    assert sum(r["calls"] for r in days) == CDR_COUNT
    table = ok(callmesh_hq(hq, "report", "extensions", *DAY))
    assert {"1000", "1001", "1002"} <= {line.split()[1] for line in table.splitlines()[2:]}
    out = tmp_path / "trunks.xlsx"
    ok(callmesh_hq(hq, "report", "trunks", *DAY, "--xlsx", str(out)))
    rows = list(load_workbook(out)["trunks"].iter_rows(values_only=True))
    calls = rows[0].index("calls")
    assert sum(int(str(r[calls])) for r in rows[1:]) == CDR_COUNT


def test_a_recording_downloads_whole_and_is_not_overwritten(hq: Deployment, tmp_path: Path) -> None:
    saved = ok(callmesh_hq(hq, "recordings", "get", SITE, RECORDING_ID, cwd=tmp_path))
    wav = tmp_path / f"{RECORDING_ID}.wav"
    assert hashlib.sha256(wav.read_bytes()).hexdigest() in saved
    with wave.open(str(wav)) as audio:
        assert (audio.getnchannels(), audio.getframerate()) == (2, 8000)
    again = callmesh_hq(hq, "recordings", "get", SITE, RECORDING_ID, cwd=tmp_path)
    assert again.returncode == 2
    assert "error file-exists" in again.stderr
    gone = callmesh_hq(hq, "recordings", "get", SITE, "no-such", "-o", str(tmp_path / "x.wav"))
    assert (gone.returncode, gone.stderr.split()[:2]) == (4, ["error", "unknown-recording:"])
    assert not list(tmp_path.glob("x.wav*"))


def test_a_sim_limit_is_applied_by_its_site(hq: Deployment) -> None:
    listed = ok(callmesh_hq(hq, "sims", "list"))
    assert {line.split()[0] for line in listed.splitlines()[2:]} == set(ICCIDS)
    done = ok(callmesh_hq(hq, "sims", "limits", ICCIDS[0], "--calls-per-day", "7", "--wait", "60"))
    assert done.startswith(f"sim-set-limits for {ICCIDS[0]} at {SITE}: applied")
    command_id = done.rstrip().rsplit("(", 1)[1].rstrip(")")
    assert "applied" in ok(callmesh_hq(hq, "sims", "command", command_id))
    nothing = callmesh_hq(hq, "sims", "limits", ICCIDS[0])
    assert (nothing.returncode, "error no-limits" in nothing.stderr) == (2, True)


def test_the_dnc_list_takes_and_gives_back_a_number(hq: Deployment) -> None:
    added = ok(callmesh_hq(hq, "dnc", "add", "+49 (170) 555-0101", "--reason", "asked"))
    assert added.startswith("+491705550101 is on the list")
    listed = json.loads(ok(callmesh_hq(hq, "dnc", "list", "--json")))
    assert {"number": "+491705550101", "reason": "asked"} in listed
    ok(callmesh_hq(hq, "dnc", "remove", "+491705550101"))
    again = callmesh_hq(hq, "dnc", "remove", "+491705550101")
    assert (again.returncode, again.stderr.split()[:2]) == (4, ["error", "not-listed:"])


def test_the_directory_reads_back_an_entry_and_each_sites_snapshot(hq: Deployment) -> None:
    entry = {"id": SITE, "name": "Main office", "sip_address": "10.1.0.1", "extensions": ["1001"]}
    answer = httpx.put(
        f"{hq.env.agg_url}/api/v1/directory/sites/{SITE}",
        json=entry,
        headers={"Authorization": f"Bearer {TOKENS['admin']}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    listed = callmesh_hq(hq, "directory", "list", "sites")
    assert ok(listed).splitlines()[2].split()[:2] == [SITE, "Main"]
    assert listed.stderr.startswith("directory revision ")
    shown = json.loads(ok(callmesh_hq(hq, "directory", "show", "sites", SITE, "--json")))
    assert (shown["name"], shown["extensions"]) == ("Main office", ["1001"])
    snapshots = json.loads(ok(callmesh_hq(hq, "directory", "snapshots", "--json")))
    assert [s["site_id"] for s in snapshots] == [SITE]
    assert snapshots[0]["version"] >= 1


def test_an_admin_adds_changes_and_removes_a_site_trunk_and_rule(
    hq: Deployment, tmp_path: Path
) -> None:
    trunk = tmp_path / "trunk.yaml"
    trunk.write_text("site: site-cli\nkind: sip\nnumbers: ['+4930100200']\n")
    added = ok(callmesh_hq(hq, "directory", "add", "sites", "site-cli", "name=CLI office",
                           "sip_address=10.9.0.1", 'extensions=["7001","7002"]'))  # fmt: skip
    assert added.startswith("added site site-cli (directory revision ")
    assert "site-cli v" in added, "the new site gets its routing table"
    ok(callmesh_hq(hq, "directory", "add", "trunks", "cli-out", "--file", str(trunk)))
    rule = ("prefix=0", "min_length=4", 'targets=[{"trunk": "cli-out", "strip": 1}]')
    ok(callmesh_hq(hq, "directory", "add", "rules", "cli-out", *rule))
    change = ("timezone=Europe/Berlin", "region=eu-central", "--unset", "name")
    changed = ok(callmesh_hq(hq, "directory", "change", "sites", "site-cli", *change))
    assert changed.startswith("changed site site-cli")
    shown = json.loads(ok(callmesh_hq(hq, "directory", "show", "sites", "site-cli", "--json")))
    assert (shown["name"], shown["timezone"], shown["region"], shown["extensions"]) == (
        "", "Europe/Berlin", "eu-central", ["7001", "7002"],
    )  # fmt: skip
    shown_rule = json.loads(ok(callmesh_hq(hq, "directory", "show", "rules", "cli-out", "--json")))
    assert (shown_rule["min_length"], shown_rule["targets"][0]["strip"]) == (4, 1)
    for kind in ("rules", "trunks", "sites"):
        assert ok(callmesh_hq(hq, "directory", "remove", kind, "cli-out" if kind != "sites"
                              else "site-cli")).startswith("removed ")  # fmt: skip
    listed = json.loads(ok(callmesh_hq(hq, "directory", "list", "sites", "--json")))
    assert "site-cli" not in [s["id"] for s in listed]


def test_a_refused_directory_change_names_the_field_and_exits_2(hq: Deployment) -> None:
    bad_zone = callmesh_hq(hq, "directory", "add", "sites", "site-bad", "sip_address=10.9.0.2",
                           "timezone=Mars/Olympus")  # fmt: skip
    assert (bad_zone.returncode, bad_zone.stdout) == (2, "")
    assert bad_zone.stderr.startswith("error invalid-request: body.timezone:")
    assert "\n  timezone: Value error, unknown time zone 'Mars/Olympus'" in bad_zone.stderr
    bad_region = callmesh_hq(hq, "directory", "change", "sites", SITE, "region=eu central ")
    assert (bad_region.returncode, bad_region.stdout) == (2, "")
    assert "\n  region: Value error, a region is printable text" in bad_region.stderr
    orphan = callmesh_hq(hq, "directory", "add", "trunks", "orphan", "site=nowhere",
                         'numbers=["+4930100300"]')  # fmt: skip
    assert orphan.returncode == 2, orphan.stderr
    assert orphan.stderr.startswith("error unknown-site: trunk orphan names site 'nowhere'")
    assert "\n  trunk orphan, site nowhere: trunk orphan names" in orphan.stderr
    again = callmesh_hq(hq, "directory", "add", "sites", SITE, "sip_address=10.1.0.1")
    assert (again.returncode, again.stderr.split()[1]) == (2, "entry-exists:")
    viewer = callmesh_hq(hq, "directory", "remove", "sites", SITE, role="hq-viewer")
    assert (viewer.returncode, viewer.stderr.split()[1]) == (3, "role-forbidden:")
    nothing = callmesh_hq(hq, "directory", "change", "sites", SITE)
    assert (nothing.returncode, nothing.stderr.split()[1]) == (2, "nothing-to-change:")
    unknown = callmesh_hq(hq, "directory", "change", "trunks", "nowhere", "kind=gsm")
    assert (unknown.returncode, unknown.stderr.split()[1]) == (4, "unknown-entry:")


def test_the_numbering_plan_is_shown_and_changed(hq: Deployment) -> None:
    entry = {"id": SITE, "sip_address": "10.1.0.1", "extensions": ["1001"], "code": "1"}
    answer = httpx.put(
        f"{hq.env.agg_url}/api/v1/directory/sites/{SITE}",
        json=entry,
        headers={"Authorization": f"Bearer {TOKENS['admin']}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    assert ok(callmesh_hq(hq, "directory", "plan")).startswith("numbering plan: flat")
    changed = ok(callmesh_hq(hq, "directory", "plan", "--site-codes", "--site-prefix", "8"))
    assert changed.startswith("changed the numbering plan (directory revision ")
    assert changed.endswith("site codes (other sites dialled as 8<code><extension>)\n")
    uncoded = callmesh_hq(hq, "directory", "change", "sites", SITE, "--unset", "code")
    assert (uncoded.returncode, uncoded.stderr.split()[1]) == (2, "missing-site-code:")
    assert f"\n  site {SITE}: site {SITE} needs a code" in uncoded.stderr
    bad = callmesh_hq(hq, "directory", "plan", "--site-prefix", "123")
    assert (bad.returncode, bad.stderr.split()[1]) == (2, "invalid-request:")
    assert "\n  site_prefix: String should match pattern" in bad.stderr
    ok(callmesh_hq(hq, "directory", "plan", "--flat", "--site-prefix", ""))
    ok(callmesh_hq(hq, "directory", "change", "sites", SITE, "--unset", "code"))


@pytest.mark.parametrize(
    ("role", "args", "code", "error_id"),
    [
        ("site-viewer", ("sites", "show", SITE), 3, "site-forbidden"),
        ("hq-viewer", ("dnc", "add", "+491705550102"), 3, "role-forbidden"),
        ("admin", ("sites", "show", "nowhere"), 4, "unknown-site"),
        ("admin", ("sites", "doctor", "nowhere"), 4, "no-doctor-report"),
        ("admin", ("report", "summary", "--from", "yesterday", "--to", "2025-11-25"), 2, None),
        ("admin", ("dnc", "add", "not-a-number"), 2, "bad-number"),
        (
            "admin",
            ("report", "sim-usage", "--from", "2025-13-01", "--to", "2025-12-01"),
            2,
            "bad-date",
        ),
        ("admin", ("directory", "show", "trunks", "nowhere"), 4, None),
        (None, ("sites", "list"), 2, "no-token"),
    ],
)
def test_refusals_name_their_error_id_and_exit_code(
    hq: Deployment, role: str | None, args: tuple[str, ...], code: int, error_id: str | None
) -> None:
    done = callmesh_hq(hq, *args, role=role)
    assert done.returncode == code, done.stderr
    assert done.stderr.startswith("error ")
    if error_id is not None:
        assert done.stderr.split()[1] == f"{error_id}:"
    assert done.stdout == ""


def test_a_wrong_token_and_an_unreachable_hq_are_told_apart(hq: Deployment) -> None:
    refused = callmesh_hq(hq, "sites", "list", role=None, token="wrong-token-0123456789")
    assert (refused.returncode, refused.stderr.split()[1]) == (3, "bad-token:")
    assert "hint: check the token" in refused.stderr
    away = callmesh_hq(hq, "sites", "list", "--url", "http://127.0.0.1:9")
    assert (away.returncode, away.stderr.split()[1]) == (5, "hq-unreachable:")


def test_the_token_comes_from_a_private_config_file(hq: Deployment, tmp_path: Path) -> None:
    config = tmp_path / ".config" / "callmesh" / "hq.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(f"url: {hq.env.agg_url}\ntoken: {TOKENS['hq-viewer']}\n")
    config.chmod(0o644)
    opened = callmesh_hq(hq, "sites", "list", role=None, cwd=tmp_path)
    assert (opened.returncode, opened.stderr.split()[1]) == (2, "secret-file-too-open:")
    config.chmod(0o600)
    assert SITE in ok(callmesh_hq(hq, "sites", "list", role=None, cwd=tmp_path))
