"""The doctor's report on the sync link: checked alone, newest kept, refused by error id."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter

from aggregator.doctor.store import latest_report, store_report
from aggregator.doctor.sync import DoctorSync
from aggregator.refusals import Refusals
from aggregator.store.db import create_engine
from appliance.doctor import Finding
from appliance.doctor_upload import (
    DoctorReportPublisher,
    DoctorSchedule,
    LatestReport,
    report_of,
)
from appliance.settings import ApplianceSettings
from drivers.sync.doctor_report import (
    CHECK_MAX,
    FINDINGS_MAX,
    TEXT_MAX,
    DoctorReport,
    parse_doctor_report,
)
from drivers.sync.protocol import DoctorReportMessage, ErrorReply, decode, encode
from drivers.sync.records import RecordError
from tests.procs import ROOT

NOW = 1_800_000_000.0


def finding(**overrides: Any) -> dict[str, Any]:
    return {
        "group": "gsm",
        "check": "modem gsm-1",
        "status": "fail",
        "detail": "AT does not answer",
        "next_step": "check the USB cable and power",
    } | overrides


def document(*findings: dict[str, Any], at: float = NOW - 10) -> dict[str, Any]:
    return {"schema": 1, "at": at, "source": "cli", "status": "ok", "findings": list(findings)}


def test_a_report_parses_and_hq_recomputes_its_status_and_counts() -> None:
    doc = document(finding(), finding(check="disk", group="system", status="ok"))
    report = parse_doctor_report(doc, now=NOW)
    assert report.status == "fail"  # the site said "ok"; the findings say otherwise
    assert report.counts == {"ok": 1, "warn": 0, "fail": 1}
    assert report.findings[0].next_step == "check the USB cable and power"


@pytest.mark.parametrize(
    ("doc", "error_id"),
    [
        ([], "record-not-map"),
        (document(at=NOW * 1000), "record-bad-time"),
        (document(at="yesterday"), "record-bad-time"),  # type: ignore[arg-type]
        (document(at=NOW + 3600), "record-bad-time"),
        ({**document(), "source": "hq"}, "record-bad-enum"),
        ({**document(), "findings": {}}, "record-bad-field"),
        (document(*[finding()] * (FINDINGS_MAX + 1)), "record-out-of-range"),
        (document("disk"), "record-not-map"),  # type: ignore[arg-type]
        (document(finding(group="kitchen")), "record-bad-enum"),
        (document(finding(status="error")), "record-bad-enum"),
        (document(finding(check="")), "record-bad-field"),
        (document(finding(check="x" * (CHECK_MAX + 1))), "record-bad-field"),
        (document(finding(check="disk\x1b[31m")), "record-bad-field"),
        (document(finding(detail=42)), "record-bad-field"),
    ],
)
def test_an_invalid_report_is_refused_with_its_error_id(doc: Any, error_id: str) -> None:
    with pytest.raises(RecordError) as refused:
        parse_doctor_report(doc, now=NOW)
    assert refused.value.error_id == error_id


def test_long_free_text_is_cut_not_refused() -> None:
    report = parse_doctor_report(document(finding(detail="d" * 5000)), now=NOW)
    assert len(report.findings[0].detail) == TEXT_MAX


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=70),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)


@given(key=st.sampled_from(["at", "source", "findings", "group", "check", "status", "detail"]),
       value=json_values)  # fmt: skip
def test_a_report_with_any_field_replaced_parses_or_is_refused_by_id(key: str, value: Any) -> None:
    one = finding()
    doc = document(one)
    if key in one:
        doc["findings"] = [{**one, key: value}]
    else:
        doc[key] = value
    error_id = ""
    try:
        parse_doctor_report(doc, now=NOW)
    except RecordError as err:
        error_id = err.error_id
    assert error_id == "" or error_id.startswith("record-")


def test_the_message_round_trips_through_the_wire_codec() -> None:
    report = parse_doctor_report(document(finding()), now=NOW)
    message = DoctorReportMessage(report.pack())
    frames = encode(message)
    decoded = decode([bytes(f) for f in frames])
    assert isinstance(decoded, DoctorReportMessage)
    assert parse_doctor_report(decoded.report, now=NOW) == report


def made_at(at: float) -> DoctorReport:
    return report_of([Finding("system", "disk", "ok", "fine")], "scheduled", at)


def test_the_box_keeps_only_its_newest_report() -> None:
    latest = LatestReport()
    assert latest.offer(made_at(NOW))
    assert not latest.offer(made_at(NOW - 60))
    assert latest.report == made_at(NOW)
    assert latest.offer(made_at(NOW + 60))


def test_the_newest_report_goes_up_once_per_session_and_again_when_newer() -> None:
    latest = LatestReport()
    publisher = DoctorReportPublisher(latest)
    assert publisher.due(0) == []
    latest.offer(made_at(NOW))
    (sent,) = publisher.due(1)
    assert isinstance(sent, DoctorReportMessage)
    assert sent.report["at"] == NOW
    assert publisher.due(2) == []
    publisher.reset()
    assert len(publisher.due(3)) == 1
    latest.offer(made_at(NOW + 1))
    (newer,) = publisher.due(4)
    assert isinstance(newer, DoctorReportMessage)
    assert newer.report["at"] == NOW + 1


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    eng = create_engine(f"sqlite:///{tmp_path / 'agg.db'}")
    yield eng
    eng.dispose()


def test_hq_keeps_the_newest_report_per_site_whatever_the_order_of_arrival(
    engine: sa.Engine,
) -> None:
    with engine.begin() as conn:
        assert store_report(conn, "site-a", made_at(NOW), 1)
        assert not store_report(conn, "site-a", made_at(NOW - 60), 2)  # late, older
        assert not store_report(conn, "site-a", made_at(NOW), 3)  # the same one again
        assert store_report(conn, "site-b", made_at(NOW - 60), 4)
        held = latest_report(conn, "site-a")
    assert held is not None
    assert (held.at_ms, held.received_ms, held.status) == (NOW * 1000, 1, "ok")
    assert held.view(now_ms=int(NOW * 1000) + 90_000)["age_s"] == 90.0


def test_a_bad_report_is_answered_by_error_id_counted_and_not_stored(engine: sa.Engine) -> None:
    registry = CollectorRegistry()
    counter = Counter("refused", "", ["site", "stream", "error_id"], registry=registry)
    sync = DoctorSync(lambda: engine, Refusals(counter, 10, 100), clock=lambda: NOW)
    bad = DoctorReportMessage(document(finding(status="maybe")))
    (answer,) = sync.report("site-a", bad)
    assert isinstance(answer, ErrorReply)
    assert (answer.error_id, answer.ref) == ("record-bad-enum", "doctor-report")
    labels = {"site": "site-a", "stream": "doctor", "error_id": "record-bad-enum"}
    assert registry.get_sample_value("refused_total", labels) == 1
    assert sync.report("site-a", DoctorReportMessage(document(finding()))) == []
    with engine.connect() as conn:
        held = latest_report(conn, "site-a")
    assert held is not None
    assert held.status == "fail"


def test_the_golden_frame_the_appliance_sent_parses_at_hq() -> None:
    raw = (ROOT / "tests" / "unit" / "sync_frames" / "msg-doctor-report.msgpack").read_bytes()
    message = decode([raw])
    assert isinstance(message, DoctorReportMessage)
    report = parse_doctor_report(message.report, now=NOW)
    assert (report.source, report.status) == ("scheduled", "fail")
    assert report.counts == {"ok": 2, "warn": 1, "fail": 1}


def box(**doctor: Any) -> ApplianceSettings:
    return ApplianceSettings.model_validate(
        {"site_id": "site-a", "profile": "branch", "data_dir": "/nonexistent", "doctor": doctor}
    )


def test_the_schedule_runs_at_start_and_a_broken_run_keeps_the_last_report() -> None:
    latest = LatestReport()
    runs: list[str] = []

    async def scenario() -> None:
        ran = asyncio.Event()

        async def checks(_settings: ApplianceSettings) -> list[Finding]:
            runs.append("run")
            ran.set()
            if len(runs) > 1:
                raise RuntimeError("a check broke")
            return [Finding("system", "disk", "ok", "fine")]

        schedule = DoctorSchedule(box(first_run_s=0, interval_h=0), latest, checks)
        await schedule.start()
        async with asyncio.timeout(10):
            await ran.wait()
        await schedule.stop()
        await schedule.run_once()

    asyncio.run(scenario())
    assert len(runs) == 2
    assert latest.report is not None
    assert (latest.report.source, latest.report.status) == ("scheduled", "ok")
