"""`callmesh hq report answer-times` and `callmesh hq report lost`: the emergency centre's
traffic reports (docs/contact-centre.md, "Reports at HQ")."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from aggregator.hq_cli.output import Progress, Result

if TYPE_CHECKING:
    from aggregator.hq_cli.client import HqClient

Sub: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Leaf = Callable[..., Any]

API_PAGE = 1000
LOST_COLUMNS = ("site_id", "time", "caller", "queue", "wait_s", "outcome", "reached",
                "reached_at", "reached_by", "callback_offered", "callback_tries",
                "callback_status")  # fmt: skip


def add(sub: Sub, leaf: Leaf) -> None:
    """Register `answer-times` and `lost` under `callmesh hq report`."""
    help = "per queue and day/hour: answered calls by wait (0-5, 5-10, ... 120+ s)"
    times = _span(leaf(sub, "answer-times", _answer_times, help), site_zone=True)
    times.add_argument("--interval", choices=("day", "hour"), default="day", help="(day)")
    lost = _span(leaf(sub, "lost", _lost, "queued calls lost and whether the caller was reached"))
    lost.add_argument(
        "--window-min", type=_positive, default=60, help="reached within N minutes (60)"
    )
    count = lost.add_mutually_exclusive_group()
    count.add_argument("--limit", type=_positive, default=50, help="at most N calls (50)")
    count.add_argument("--all", action="store_true", help="every lost call")


def _span(parser: argparse.ArgumentParser, site_zone: bool = False) -> argparse.ArgumentParser:
    parser.add_argument("--from", dest="start", required=True, help="first date or ISO time")
    parser.add_argument("--to", dest="end", required=True, help="end date or time (exclusive)")
    parser.add_argument("--site", help="only this site")
    parser.add_argument("--queue", help="only this queue")
    zones = "time zone, or site: each site's (UTC)" if site_zone else "time zone (default UTC)"
    parser.add_argument("--tz", default="UTC", help=zones)
    return parser


def _params(args: argparse.Namespace) -> dict[str, Any]:
    return {"from": args.start, "to": args.end, "site": args.site, "queue": args.queue,
            "tz": args.tz}  # fmt: skip


def _answer_times(client: HqClient, args: argparse.Namespace) -> Result:
    params = _params(args) | {"interval": args.interval}
    rows = client.get("/api/v1/reports/queues/answer-times", **params)["rows"]
    return Result(rows, (), sheet="answer-times")


def _lost(client: HqClient, args: argparse.Namespace) -> Result:
    """Follow the API's cursor until ``--limit`` calls (or all with ``--all``)."""
    params = _params(args) | {"window_min": args.window_min}
    limit = None if args.all else args.limit
    shown = Progress(enabled=False) if args.quiet else Progress()
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        size = API_PAGE if limit is None else min(API_PAGE, limit - len(rows))
        page = client.get("/api/v1/reports/queues/lost", **params, limit=size, cursor=cursor)
        rows += page["calls"]
        cursor = page["next_cursor"]
        shown.rows(len(rows), "calls")
        if cursor is None or (limit is not None and len(rows) >= limit):
            break
    shown.finish()
    notes = ["more calls match: use --limit N or --all"] if cursor is not None else []
    return Result(rows, LOST_COLUMNS, sheet="lost-calls", notes=notes)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value
