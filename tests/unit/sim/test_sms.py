"""SMS rules and the SMS service on a temporary store with fake modems: validation, the
per-SIM token bucket, the queue's state machine, retries, restart, received SMS."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgpack
import pytest
import sqlalchemy as sa

from aggregator.sms.queries import counts_by_sim
from aggregator.store.db import create_engine
from aggregator.store.schema import sms_messages
from aggregator.store.sms import store_sms
from appliance.gateway.settings import SmsSettings
from appliance.gateway.sms import SmsService
from appliance.gateway.sms_policy import (
    RetryRule,
    SmsError,
    TokenBucket,
    attempt_failed,
    check_number,
    check_ussd,
    count_parts,
    expired,
    recovered,
    sending,
    sent,
    transient,
)
from appliance.gateway.sms_store import OUTBOX, SmsStore
from appliance.settings import SimSettings
from appliance.sim import SimIdentity, SimService
from appliance.sim.fake import FakeSimChannel
from appliance.store import Outbox, Store
from drivers.modem import EventStream, SmsReceived
from drivers.modem.errors import CmsError, CommandTimeout, NoNetwork
from drivers.sync.protocol import SmsBatch, decode, encode

A, B = "8949000000000000011", "8949000000000000021"
RULE = RetryRule(max_attempts=3, retry_delay_s=10, expire_s=100)


def error_id(func: object, *args: object) -> str:
    with pytest.raises(SmsError) as caught:
        func(*args)  # type: ignore[operator]
    return caught.value.error_id


def test_requests_are_validated_with_stable_error_ids() -> None:
    assert check_number("+49 (30) 123-456") == "+4930123456"
    assert error_id(check_number, "call me") == "bad-number"
    assert error_id(count_parts, "", 10) == "empty-text"
    assert count_parts("x" * 160, 10) == 1
    assert count_parts("x" * 161, 10) == 2
    assert count_parts("Grüße €" * 20, 10) == 1
    assert count_parts("Привет" * 12, 10) == 2  # UCS-2: 70 per single SMS, 67 per part
    assert error_id(count_parts, "x" * 1531, 10) == "text-too-long"
    assert error_id(count_parts, "smile \U0001f600", 10) == "unsupported-character"
    assert check_ussd("*100#") == "*100#"
    assert check_ussd("*#06#") == "*#06#"
    for bad in ("100", "*100#; AT+CFUN=0", "*", '*1"#'):
        assert error_id(check_ussd, bad) == "bad-ussd-code"


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=1.0, capacity=3)
    assert [bucket.take(1, 0.0) for _ in range(3)] == [0, 0, 0]
    assert bucket.take(1, 0.0) == pytest.approx(1.0)
    assert bucket.take(1, 0.5) == pytest.approx(0.5)
    assert bucket.take(1, 1.0) == 0
    assert bucket.take(5, 10.0) == 0  # more parts than the burst cost the whole bucket
    assert bucket.take(1, 10.0) == pytest.approx(1.0)


def test_transient_errors_are_retried_then_given_up() -> None:
    assert transient(CommandTimeout("x"))
    assert transient(NoNetwork("x"))
    assert transient(CmsError("AT+CMGS", "+CMS ERROR: 42", 42))
    assert not transient(CmsError("AT+CMGS", "+CMS ERROR: 304", 304))
    record = {"id": "1", "attempts": 0, "created": 0.0, "reason": "", "status": "queued"}
    first = sending(record, "gsm-1", A, "+1555", 1.0)
    assert (first["status"], first["attempts"], first["channel"]) == ("sending", 1, "gsm-1")
    again = attempt_failed(first, "busy", True, RULE, 2.0)
    assert (again["status"], again["not_before"]) == ("queued", 12.0)
    third = sending(sending(again, "gsm-1", A, "", 3.0), "gsm-1", A, "", 4.0)
    final = attempt_failed(third, "busy", True, RULE, 5.0)
    assert final["status"] == "failed"
    assert "gave up after 3 attempts" in final["reason"]
    refused = attempt_failed(first, "+CMS ERROR: 304", False, RULE, 2.0)
    assert refused["status"] == "failed"
    assert refused["attempts"] == 1
    assert sent(first, [7], 3.0)["refs"] == [7]
    assert expired(again, RULE, 50.0) is None
    gone = expired(again, RULE, 101.0)
    assert gone is not None
    assert gone["status"] == "failed"
    assert "last error: busy" in gone["reason"]
    back = recovered(first, RULE, 9.0)
    assert back["status"] == "queued"
    assert back["reason"].startswith("interrupted")


def test_store_keeps_order_pages_newest_first_and_prunes_only_finished(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s", map_size_mb=16)
    try:
        records = SmsStore(store, keep=3)
        for n in range(5):
            records.put({"id": f"id-{n}", "direction": "out", "status": "queued"})
        assert [r["id"] for r in records.unfinished()] == [f"id-{n}" for n in range(5)]
        for n in (1, 2, 3, 4):
            records.put({"id": f"id-{n}", "direction": "out", "status": "sent"})
        # id-0 is still queued, so the oldest finished ones went to stay within keep=3.
        assert records.get("id-1") is None
        assert records.get("id-2") is None
        assert records.get("id-0") is not None
        assert [r["id"] for r in records.unfinished()] == ["id-0"]
        page, cursor = records.page("out", 2, None)
        assert [r["id"] for r in page] == ["id-4", "id-3"]
        assert cursor == "id-3"
        page, cursor = records.page("out", 2, cursor)
        assert [r["id"] for r in page] == ["id-0"]
        assert cursor is None
        sent_up = Outbox(store, OUTBOX).read_batch()
        assert [msgpack.unpackb(p)["id"] for _, p in sent_up] == ["id-1", "id-2", "id-3", "id-4"]
    finally:
        store.close()


class FakeModem:
    """Records what it was asked to send; ``errors`` are raised by the next sends."""

    def __init__(self) -> None:
        self.state = "ready"
        self.sent: list[tuple[str, str]] = []
        self.errors: list[Exception] = []
        self.stream = EventStream()

    def subscribe(self, limit: int = 256) -> EventStream:
        return self.stream

    async def send_sms(self, number: str, text: str) -> list[int]:
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append((number, text))
        return [len(self.sent)]

    async def ussd(self, code: str, within: float = 30.0) -> str:
        if code == "*999#":  # the network never answers: the driver gives up after ``within``
            await asyncio.sleep(within)
            raise CommandTimeout(f"no USSD reply to {code}")
        return f"balance for {code}"


class Box:
    def __init__(self, path: Path, **sms: object) -> None:
        self.path = path
        self.modems = {"gsm-1": FakeModem(), "gsm-2": FakeModem()}
        self.settings = SmsSettings.model_validate(
            {"retry_delay_s": 0.05, "ussd_timeout_s": 0.2, **sms}
        )

    async def start(self) -> SmsService:
        self.store = Store.open(self.path, map_size_mb=16)
        channels = [
            FakeSimChannel("gsm-1", [SimIdentity(A, number="+15550001")]),
            FakeSimChannel("gsm-2", [SimIdentity(B, number="+15550002")]),
        ]
        store = self.store
        self.sim = SimService(SimSettings(), "UTC", lambda: store, channels)
        await self.sim.start()
        self.sms = SmsService(self.settings, lambda: store, self.modems, self.sim)
        await self.sms.start()
        return self.sms

    async def stop(self) -> None:
        await self.sms.stop()
        await self.sim.stop()
        self.store.close()


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Box]:
    box = Box(tmp_path / "store")
    await box.start()
    yield box
    await box.stop()


async def settled(sms: SmsService, sms_id: str, status: str, within: float = 5.0) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        record = await sms.get(sms_id)
        if record["status"] == status:
            return record
        await asyncio.sleep(0.02)
    raise AssertionError(f"{sms_id} not {status}: {record}")


async def test_sms_is_sent_on_the_first_ready_channel_and_retried(box: Box) -> None:
    box.modems["gsm-1"].errors = [CmsError("AT+CMGS", "+CMS ERROR: 42", 42)]
    queued = await box.sms.submit("+4930 1234", "hello")
    assert queued["status"] == "queued"
    done = await settled(box.sms, queued["id"], "sent")
    assert (done["channel"], done["iccid"], done["sim_number"]) == ("gsm-1", A, "+15550001")
    assert done["attempts"] == 2
    assert done["refs"] == [1]
    assert box.modems["gsm-1"].sent == [("+49301234", "hello")]


async def test_permanent_error_fails_at_once_with_the_reason(box: Box) -> None:
    box.modems["gsm-2"].errors = [CmsError("AT+CMGS", "+CMS ERROR: 304", 304)]
    queued = await box.sms.submit("+4930 1234", "hello", "gsm-2")
    done = await settled(box.sms, queued["id"], "failed")
    assert done["attempts"] == 1
    assert "304" in done["reason"]
    with pytest.raises(SmsError) as caught:
        await box.sms.submit("+4930 1234", "hello", "gsm-9")
    assert caught.value.error_id == "unknown-channel"


async def test_rate_limit_holds_back_a_sim_over_its_budget(tmp_path: Path) -> None:
    box = Box(tmp_path / "store", rate_per_minute=60, burst=2)
    sms = await box.start()
    try:
        started = time.monotonic()
        ids = [(await sms.submit("+4930111", f"m{n}", "gsm-1"))["id"] for n in range(3)]
        await settled(sms, ids[2], "sent", within=10)
        # The burst of two leaves the bucket empty; the third waits for the next token,
        # one a second later. A loaded machine only makes it later, never earlier.
        assert time.monotonic() - started >= 0.9
    finally:
        await box.stop()


async def test_queued_and_interrupted_sms_are_sent_after_a_restart(tmp_path: Path) -> None:
    box = Box(tmp_path / "store")
    sms = await box.start()
    box.modems["gsm-1"].state = box.modems["gsm-2"].state = "recovering"
    queued = await sms.submit("+4930111", "after restart")
    assert sms._records is not None
    sms._records.put(sending(await sms.get(queued["id"]), "gsm-1", A, "", time.time()))
    await box.stop()
    box.modems["gsm-1"].state = box.modems["gsm-2"].state = "ready"
    sms = await box.start()
    try:
        done = await settled(sms, queued["id"], "sent")
        assert done["attempts"] == 2
    finally:
        await box.stop()


async def test_received_sms_is_stored_with_its_sim_and_queued_for_hq(box: Box) -> None:
    box.modems["gsm-2"].stream.put(SmsReceived("+4917012", "Balance low", None, 1))
    for _ in range(100):
        page, _ = await box.sms.page("in", 10, None)
        if page:
            break
        await asyncio.sleep(0.02)
    assert [(r["from"], r["text"], r["iccid"], r["channel"]) for r in page] == [
        ("+4917012", "Balance low", B, "gsm-2")
    ]
    pending = Outbox(box.store, OUTBOX).read_batch()
    assert msgpack.unpackb(pending[0][1])["id"] == page[0]["id"]


async def test_ussd_answers_and_times_out_with_error_ids(box: Box) -> None:
    answer = await box.sms.ussd("gsm-1", "*100#")
    assert answer == {"channel": "gsm-1", "iccid": A, "code": "*100#", "reply": "balance for *100#"}
    for channel, code, expected in (
        ("gsm-1", "*999#", "ussd-timeout"),
        ("gsm-7", "*100#", "unknown-channel"),
        ("gsm-1", "ATZ", "bad-ussd-code"),
    ):
        with pytest.raises(SmsError) as caught:
            await box.sms.ussd(channel, code)
        assert caught.value.error_id == expected
    box.modems["gsm-2"].state = "recovering"
    with pytest.raises(SmsError) as caught:
        await box.sms.ussd("gsm-2", "*100#")
    assert caught.value.error_id == "channel-not-ready"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    eng = create_engine(f"sqlite:///{tmp_path / 'hq.db'}")
    yield eng
    eng.dispose()


def test_hq_stores_sms_once_per_site_and_id(engine: sa.Engine) -> None:
    doc = {"id": "s1", "direction": "in", "from": "+4917012", "text": "hi", "iccid": A,
           "status": "received", "created": 1_700_000_000.0, "parts": 1}  # fmt: skip
    records = [(1, msgpack.packb(doc)), (2, b"\xc1"), (3, msgpack.packb({"id": 5}))]
    batch = decode(encode(SmsBatch(records)))
    assert isinstance(batch, SmsBatch)
    assert batch.records == records
    with engine.begin() as conn:
        assert store_sms(conn, "site-a", batch.records) == 1
        assert store_sms(conn, "site-a", batch.records) == 1
        bad = msgpack.packb({**doc, "id": "s2", "parts": "many"})
        assert store_sms(conn, "site-a", [(4, bad)]) == 0
    with engine.connect() as conn:
        rows = conn.execute(sa.select(sms_messages)).all()
        assert [(r.site_id, r.sms_id, r.number, r.at_ms) for r in rows] == [
            ("site-a", "s1", "+4917012", 1_700_000_000_000)
        ]
        assert counts_by_sim(conn, [A]) == {A: {"received": 1, "sent": 0, "failed": 0}}
