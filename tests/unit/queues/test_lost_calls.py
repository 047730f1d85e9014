"""The lost-calls list: each lost queued call, and whether its caller was reached afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from aggregator.store.cdrs import CdrStore
from aggregator.store.db import create_engine
from aggregator.store.schema import queue_unanswered
from tests.queue_cdrs import QueuedCall, call_back
from tests.sync_env import T0, make_cdr
from tests.unit.queues.conftest import BRANCH, HQ

MIN = 60.0
SPAN = {"from": "2025-11-24", "to": "2025-11-25"}  # T0 is 2025-11-24T16:00Z


def answered(n: int, start: float, caller: str = "+4930100", callee: str = "+49170") -> bytes:
    """A plain answered call (no queue) between two numbers."""
    return make_cdr(n, start=start, disposition="answered",
                    caller={"number": caller, "extension": None, "name": ""},
                    callee={"number": callee, "extension": None, "name": ""})  # fmt: skip


# Each lost caller's story, at site-a unless said otherwise.
QUEUED = [
    QueuedCall(1, "support", "abandoned", wait_s=40, start=T0, caller="+111"),
    QueuedCall(2, "support", "timeout", wait_s=300, start=T0 + MIN, caller="+222"),
    QueuedCall(3, "sales", "interrupted", wait_s=12, start=T0 + 2 * MIN, caller="+333"),
    QueuedCall(4, "support", "abandoned", wait_s=25, start=T0 + 3 * MIN, caller="+444"),
    QueuedCall(
        5,
        "support",
        "abandoned",
        wait_s=9,
        start=T0 + 4 * MIN,
        caller="+555",
        callback_offered=True,
    ),
    QueuedCall(6, "support", "abandoned", wait_s=9, start=T0 + 5 * MIN, caller=""),
    QueuedCall(7, "support", "answered", wait_s=3, talk_s=30, start=T0 + 6 * MIN, caller="+777"),
    QueuedCall(8, "support", "overflowed", wait_s=300, start=T0 + 7 * MIN, caller="+888"),
    # +444 calls again and gives up again: a lost call is no reached caller.
    QueuedCall(9, "support", "abandoned", wait_s=5, start=T0 + 20 * MIN, caller="+444"),
    # +555 takes a callback offer: answered at the second try.
    QueuedCall(10, "support", "callback", wait_s=30, start=T0 + 30 * MIN, caller="+555"),
    # +666 gives up, then takes a callback offer that fails at every try.
    QueuedCall(11, "support", "abandoned", wait_s=20, start=T0 + 21 * MIN, caller="+666"),
    QueuedCall(12, "support", "callback", wait_s=30, start=T0 + 22 * MIN, caller="+666"),
    # +999 gives up, then takes a callback offer not tried yet.
    QueuedCall(13, "sales", "abandoned", wait_s=20, start=T0 + 23 * MIN, caller="+999"),
    QueuedCall(14, "sales", "callback", wait_s=30, start=T0 + 24 * MIN, caller="+999"),
]
# The call backs' CDRs: +666's arrive before its queued call's, one batch each.
BACKS_555 = [(300, call_back(300, QUEUED[9], 1, "retry", T0 + 35 * MIN)),
             (301, call_back(301, QUEUED[9], 2, "answered", T0 + 37 * MIN))]  # fmt: skip
BACKS_666 = [(302, call_back(302, QUEUED[11], 1, "retry", T0 + 26 * MIN)),
             (303, call_back(303, QUEUED[11], 2, "failed", T0 + 28 * MIN))]  # fmt: skip
PLAIN = [
    (100, answered(100, T0 + 10 * MIN, caller="1003", callee="+111")),  # agent calls +111 back
    (101, answered(101, T0 + 150 * MIN, caller="+222")),  # +222 calls again, 2.5 h later
    (
        102,
        make_cdr(
            102,
            start=T0 + 15 * MIN,
            disposition="no-answer",
            callee={"number": "+333", "extension": None, "name": ""},
        ),
    ),
]
ELSEWHERE = [(200, answered(200, T0 + 10 * MIN, caller="+333"))]  # +333 at another site


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    eng = create_engine(f"sqlite:///{tmp_path_factory.mktemp('lost') / 'agg.db'}")
    store = CdrStore(eng)
    for back in BACKS_666:
        store.ingest("site-a", [back])
    store.ingest("site-a", [(c.n, c.cdr()) for c in QUEUED] + PLAIN)
    store.ingest("site-a", BACKS_555 + BACKS_666)  # +666's redelivered
    store.ingest("site-a", [(c.n, c.cdr()) for c in QUEUED[:3]])  # redelivered
    store.ingest("site-b", [*ELSEWHERE, (QUEUED[2].n, QUEUED[2].cdr())])
    yield eng
    eng.dispose()


def get(client: TestClient, token: str = HQ, **params: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    response: httpx.Response = client.get(
        "/api/v1/reports/queues/lost", params={**SPAN, **params}, headers=headers
    )
    return response


def test_calls_not_answered_are_kept_once(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        kept = conn.execute(sa.select(queue_unanswered.c.site_id, queue_unanswered.c.outcome))
        outcomes = sorted(kept.all())
    assert outcomes == sorted(
        [("site-a", c.outcome) for c in QUEUED if c.outcome != "answered"]
        + [("site-b", "interrupted")]
    )


def test_each_lost_call_says_whether_and_how_its_caller_was_reached(client: TestClient) -> None:
    body = get(client, site="site-a").json()
    assert body["next_cursor"] is None
    assert [(c["caller"], c["outcome"], c["reached"], c["reached_by"]) for c in body["calls"]] == [
        ("+111", "abandoned", True, "call"),  # the agent called back
        ("+222", "timeout", False, None),  # called again, but after the hour's window
        ("+333", "interrupted", False, None),  # unanswered here; answered at another site
        ("+444", "abandoned", False, None),  # lost again: no reached caller
        ("+555", "abandoned", True, "callback"),  # took a callback offer, answered
        ("", "abandoned", False, None),  # anonymous: never matched
        ("+444", "abandoned", False, None),
        ("+666", "abandoned", False, None),  # took a callback offer, every try failed
        ("+999", "abandoned", False, None),  # took a callback offer, not tried yet
    ]
    first = body["calls"][0]
    assert first["reached_at"] == "2025-11-24T16:10:00.000+00:00"
    assert (first["queue"], first["wait_s"], first["time"]) == (
        "support", 40.0, "2025-11-24T16:00:00.000+00:00")  # fmt: skip


def test_each_lost_call_shows_its_callback_offer_tries_and_status(client: TestClient) -> None:
    calls = get(client, site="site-a").json()["calls"]
    assert [(c["caller"], c["callback_offered"], c["callback_tries"], c["callback_status"])
            for c in calls] == [
        ("+111", False, None, None),
        ("+222", False, None, None),
        ("+333", False, None, None),
        ("+444", False, None, None),
        ("+555", True, 2, "answered"),  # heard the offer, gave up, took one later
        ("", False, None, None),
        ("+444", False, None, None),
        ("+666", False, 2, "failed"),
        ("+999", False, 0, "waiting"),
    ]  # fmt: skip
    reached = next(c for c in calls if c["caller"] == "+555")
    assert reached["reached_at"] == "2025-11-24T16:37:00.000+00:00"  # the answered try


def test_the_callback_status_is_in_the_csv(client: TestClient) -> None:
    text = get(client, site="site-a", format="csv").text
    rows = text.strip().splitlines()
    assert rows[0].endswith("callback_offered,callback_tries,callback_status")
    assert rows[-2].endswith(",False,2,failed")
    assert rows[-1].endswith(",False,0,waiting")


def test_a_longer_window_reaches_a_later_call(client: TestClient) -> None:
    calls = get(client, site="site-a", window_min="180").json()["calls"]
    timeout = next(c for c in calls if c["caller"] == "+222")
    assert (timeout["reached"], timeout["reached_by"]) == (True, "call")


def test_pages_follow_each_other_to_the_end(client: TestClient) -> None:
    seen: list[tuple[str, str]] = []
    cursor: str | None = None
    for _ in range(10):
        body = get(client, limit="3", **({"cursor": cursor} if cursor else {})).json()
        seen += [(c["site_id"], c["cdr_id"]) for c in body["calls"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 10  # nine at site-a, one at site-b
    whole = [(c["site_id"], c["cdr_id"]) for c in get(client).json()["calls"]]
    assert seen == whole


def test_a_site_viewer_sees_its_sites_and_csv_has_every_call(client: TestClient) -> None:
    calls = get(client, BRANCH).json()["calls"]
    assert [(c["site_id"], c["caller"]) for c in calls] == [("site-b", "+333")]
    assert get(client, BRANCH, site="site-a").json()["error_id"] == "site-forbidden"
    text = get(client, site="site-a", queue="support", format="csv", limit="1").text
    lines = text.strip().splitlines()
    assert lines[0].startswith("site_id,cdr_id,time,caller,queue,wait_s,outcome,reached")
    assert len(lines) == 1 + 7  # every support call lost, not one page


@pytest.mark.parametrize(
    ("params", "status", "error_id"),
    [({"cursor": "bm9wZQ=="}, 422, "bad-cursor"), ({"cursor": "!!"}, 422, "bad-cursor"),
     ({"window_min": "0"}, 422, "invalid-request"), ({"tz": "Mars/Olympus"}, 422, "bad-time-zone")],
)  # fmt: skip
def test_bad_parameters_are_refused_with_an_error_id(
    client: TestClient, params: dict[str, str], status: int, error_id: str
) -> None:
    response = get(client, **params)
    assert (response.status_code, response.json()["error_id"]) == (status, error_id)
