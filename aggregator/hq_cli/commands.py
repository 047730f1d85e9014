"""`callmesh hq`: sites, CDR search, reports and recordings over the HQ API, and the runner.

Each leaf command sets ``action``: a function of the client and the parsed arguments that
answers a ``Result`` (printed as a table, or as ``--json``, ``--csv`` or ``--xlsx``) or a
line of text (an action's outcome).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from aggregator.hq_cli import directory_commands, fleet_commands, queue_commands
from aggregator.hq_cli.errors import EXIT_FAILURE, EXIT_USAGE, HqCliError
from aggregator.hq_cli.output import Progress, Result, record, table, write_csv, write_xlsx
from aggregator.hq_cli.paths import segment

if TYPE_CHECKING:
    from aggregator.hq_cli.client import HqClient

Sub: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Action: TypeAlias = "Callable[[HqClient, argparse.Namespace], Result | str]"

API_PAGE = 1000
DOCTOR_COLUMNS = ("group", "check", "status", "detail", "next_step")
SITE_COLUMNS = (
    "site_id",
    "status",
    "calls_active",
    "last_seen",
    "software",
    "backlog_cdr",
    "cdrs_received",
)
CDR_COLUMNS = (
    "started_at",
    "site_id",
    "direction",
    "caller_number",
    "callee_number",
    "trunk",
    "disposition",
    "duration_s",
    "recording_id",
)
EPILOG = (
    "HQ and its token: --url, else $CALLMESH_HQ_URL, else url: in the config file; the "
    "token from $CALLMESH_HQ_TOKEN or token:/token_file: in the config file (--config, "
    "$CALLMESH_HQ_CONFIG or ~/.config/callmesh/hq.yaml). Exit codes: 0 done, 1 HQ failed, "
    "2 usage or invalid request, 3 token refused, 4 not found, 5 HQ unreachable. "
    "See docs/hq-cli.md."
)


def add_parser(sub: Sub) -> None:
    """Register `callmesh hq`."""
    parser = sub.add_parser(
        "hq",
        help="query and act on HQ through its API",
        description="Read sites, CDRs, reports, SIMs, the directory and the DNC list from "
        "HQ, act on SIMs, the DNC list and the directory, download recordings.",
        epilog=EPILOG,
    )
    commands = parser.add_subparsers(dest="hq_command", metavar="COMMAND", required=True)
    _sites(commands)
    _cdrs(commands)
    _reports(commands)
    _recordings(commands)
    fleet_commands.add(commands, leaf)
    directory_commands.add(commands, leaf)


def leaf(group: Sub, name: str, action: Action, help: str, listing: bool = True) -> Any:
    """A command that runs ``action``; listings also take the output options."""
    parser = group.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".")
    parser.add_argument("--url", help="HQ's base URL, e.g. https://hq.example:8800")
    parser.add_argument("--config", type=Path, help="config file (url, token, token_file)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    if listing:
        out = parser.add_mutually_exclusive_group()
        out.add_argument("--json", action="store_true", help="print JSON instead of a table")
        out.add_argument("--csv", metavar="FILE", help="write CSV to FILE (- for stdout)")
        out.add_argument("--xlsx", metavar="FILE", type=Path, help="write an XLSX workbook")
    parser.set_defaults(func=run, action=action)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the chosen command; HQ's errors become a message on stderr and an exit code."""
    # Loaded here, not at import: every `callmesh` invocation builds this parser.
    from aggregator.hq_cli.client import HqClient
    from aggregator.hq_cli.target import resolve

    try:
        target = resolve(args.url, args.config, os.environ, Path.home())
        with HqClient(target) as client:
            outcome = args.action(client, args)
        _emit(outcome, args)
    except HqCliError as err:
        sys.stderr.write("".join(f"{line}\n" for line in err.lines()))
        return err.exit_code
    except (KeyError, TypeError, AttributeError) as err:
        # HQ answered JSON of another shape (another version, or not HQ at all).
        sys.stderr.write(
            f"error unexpected-answer: HQ's answer lacks what was expected ({err!r})\n"
        )
        return EXIT_FAILURE
    return 0


def progress(args: argparse.Namespace) -> Progress:
    """The progress line, unless ``--quiet``."""
    return Progress(enabled=False) if args.quiet else Progress()


def _emit(outcome: Result | str, args: argparse.Namespace) -> None:
    if isinstance(outcome, str):
        sys.stdout.write(outcome + "\n")
        return
    for note in outcome.notes:
        sys.stderr.write(note + "\n")
    if getattr(args, "json", False):
        raw = outcome.rows if outcome.raw is None else outcome.raw
        sys.stdout.write(json.dumps(raw, indent=2, ensure_ascii=False) + "\n")
    elif getattr(args, "csv", None):
        _csv(outcome, args.csv)
    elif getattr(args, "xlsx", None):
        write_xlsx(outcome.rows, args.xlsx, outcome.sheet)
        sys.stderr.write(f"wrote {len(outcome.rows)} rows to {args.xlsx}\n")
    elif outcome.raw is not None and not outcome.columns:
        sys.stdout.write(record(outcome.raw) + "\n")
    else:
        sys.stdout.write(table(outcome.rows, outcome.columns or _keys(outcome.rows)) + "\n")


def _csv(outcome: Result, target: str) -> None:
    if target == "-":
        write_csv(outcome.rows, sys.stdout)
        return
    try:
        with open(target, "w", newline="", encoding="utf-8") as sink:
            write_csv(outcome.rows, sink)
    except OSError as err:
        raise HqCliError("export-unwritable", f"{target}: {err.strerror}", EXIT_USAGE) from None
    sys.stderr.write(f"wrote {len(outcome.rows)} rows to {target}\n")


def _keys(rows: list[dict[str, Any]]) -> list[str]:
    return [k for k, v in (rows[0] if rows else {}).items() if not isinstance(v, dict | list)]


def _sites(commands: Sub) -> None:
    group = commands.add_parser("sites", help="sites: status, last seen, backlog")
    sub = group.add_subparsers(dest="sites_command", metavar="ACTION", required=True)
    leaf(sub, "list", _list_sites, "list the sites this token may see")
    show = leaf(sub, "show", _show_site, "one site's status and health report")
    show.add_argument("site", help="site id")
    doctor = leaf(sub, "doctor", _site_doctor, "the newest doctor report the site sent")
    doctor.add_argument("site", help="site id")
    code = leaf(
        sub,
        "enrolment-code",
        _enrolment_code,
        "create a one-time code a box enrols with (`callmesh enrol`; admin)",
        listing=False,
    )
    code.add_argument("site", help="site id the box will have")
    code.add_argument("--ttl-h", type=float, help="hours the code is valid (default HQ's)")
    revoke = leaf(
        sub, "revoke-key", _revoke_key, "revoke a site's enrolled key (admin)", listing=False
    )
    revoke.add_argument("site", help="site id")


def _list_sites(client: HqClient, args: argparse.Namespace) -> Result:
    rows = client.get("/api/v1/sites")["sites"]
    return Result(rows, SITE_COLUMNS, sheet="sites")


def _show_site(client: HqClient, args: argparse.Namespace) -> Result:
    found = client.get(f"/api/v1/sites/{segment(args.site)}")
    return Result([found], (), raw=found, sheet="site")


def _site_doctor(client: HqClient, args: argparse.Namespace) -> Result:
    found = client.get(f"/api/v1/sites/{segment(args.site)}/doctor")
    made = datetime.fromtimestamp(found["at_ms"] / 1000, UTC).isoformat(timespec="seconds")
    note = f"{found['status']}: made {made} by {found['source']}, {found['age_s']:.0f} s ago"
    return Result(found["findings"], DOCTOR_COLUMNS, raw=found, sheet="doctor", notes=[note])


def _enrolment_code(client: HqClient, args: argparse.Namespace) -> str:
    body = {} if args.ttl_h is None else {"ttl_s": args.ttl_h * 3600}
    made = client.call("POST", f"/api/v1/sites/{segment(args.site)}/enrolment", body=body)
    expires = datetime.fromtimestamp(made["expires_ms"] / 1000, UTC).isoformat(timespec="seconds")
    sys.stderr.write(f"single use, valid until {expires}; HQ shows it only now\n")
    code: str = made["code"]
    return code


def _revoke_key(client: HqClient, args: argparse.Namespace) -> str:
    client.call("DELETE", f"/api/v1/sites/{segment(args.site)}/key")
    return f"revoked the enrolled key of {args.site}"


def _cdrs(commands: Sub) -> None:
    group = commands.add_parser("cdrs", help="search call detail records")
    sub = group.add_subparsers(dest="cdrs_command", metavar="ACTION", required=True)
    search = leaf(sub, "search", _search_cdrs, "search CDRs, newest first")
    search.add_argument("--site", help="only this site")
    search.add_argument("--from", dest="start", help="from this date or ISO time")
    search.add_argument("--to", dest="end", help="until this date or ISO time (exclusive)")
    search.add_argument("--number", help="caller or callee number")
    search.add_argument("--extension", help="caller or callee extension")
    search.add_argument("--disposition", help="e.g. answered, no-answer, busy, failed")
    search.add_argument("--trunk", help="only calls over this trunk")
    search.add_argument("--tz", default="UTC", help="time zone of dates and times (default UTC)")
    count = search.add_mutually_exclusive_group()
    count.add_argument("--limit", type=_positive, default=50, help="at most N calls (50)")
    count.add_argument("--all", action="store_true", help="every matching call")


def _search_cdrs(client: HqClient, args: argparse.Namespace) -> Result:
    params = {
        "site": args.site,
        "from": args.start,
        "to": args.end,
        "number": args.number,
        "extension": args.extension,
        "disposition": args.disposition,
        "trunk": args.trunk,
        "tz": args.tz,
    }
    rows, more = _pages(client, params, None if args.all else args.limit, progress(args))
    notes = ["more calls match: use --limit N or --all"] if more else []
    return Result(rows, CDR_COLUMNS, sheet="cdrs", notes=notes)


def _pages(
    client: HqClient, params: dict[str, Any], limit: int | None, shown: Progress
) -> tuple[list[dict[str, Any]], bool]:
    """Follow the API's cursor until ``limit`` rows (None: all); whether more remain."""
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        size = API_PAGE if limit is None else min(API_PAGE, limit - len(rows))
        page = client.get("/api/v1/cdrs", **params, limit=size, cursor=cursor)
        rows += page["cdrs"]
        cursor = page["next_cursor"]
        shown.rows(len(rows), "calls")
        if cursor is None or (limit is not None and len(rows) >= limit):
            shown.finish()
            return rows, cursor is not None


def _reports(commands: Sub) -> None:
    group = commands.add_parser(
        "report", help="traffic reports per day, hour, trunk, extension, queue"
    )
    sub = group.add_subparsers(dest="report_command", metavar="REPORT", required=True)
    summary = _report_leaf(sub, "summary", "calls, answered, ASR, ACD, minutes per site")
    summary.add_argument("--group", choices=("day", "hour"), default="day", help="(day)")
    _report_leaf(sub, "extensions", "totals per extension")
    _report_leaf(sub, "trunks", "totals per trunk")
    queues = _report_leaf(sub, "queues", "per queue and day/hour: answered, abandoned, SL, ASA")
    queues.add_argument("--interval", choices=("day", "hour"), default="day", help="(day)")
    queues.add_argument("--queue", help="only this queue")
    _report_leaf(sub, "agents", "per agent: logged-in, paused by reason, occupancy, calls, talk")
    queue_commands.add(sub, leaf)
    usage = leaf(sub, "sim-usage", _sim_usage, "per SIM and local day: calls, answer rate, talk")
    usage.add_argument("--from", dest="start", required=True, help="first day, YYYY-MM-DD")
    usage.add_argument("--to", dest="end", required=True, help="last day, inclusive")
    usage.add_argument("--site", help="only this site")
    usage.add_argument("--iccid", help="only this SIM")


REPORT_PATHS = {
    "summary": "/api/v1/reports/summary",
    "extensions": "/api/v1/reports/by-extension",
    "trunks": "/api/v1/reports/by-trunk",
    "queues": "/api/v1/reports/queues",
    "agents": "/api/v1/reports/agents",
}


def _report_leaf(sub: Sub, name: str, help: str) -> Any:
    parser = leaf(sub, name, _report, help)
    parser.add_argument("--from", dest="start", required=True, help="first date or ISO time")
    parser.add_argument("--to", dest="end", required=True, help="end date or time (exclusive)")
    parser.add_argument("--site", help="only this site")
    parser.add_argument("--tz", default="UTC", help="time zone (default UTC)")
    parser.set_defaults(report=name)
    return parser


def _report(client: HqClient, args: argparse.Namespace) -> Result:
    params = {"from": args.start, "to": args.end, "site": args.site, "tz": args.tz}
    if args.report == "summary":
        params["group"] = args.group
    if args.report == "queues":
        params |= {"interval": args.interval, "queue": args.queue}
    rows = client.get(REPORT_PATHS[args.report], **params)["rows"]
    return Result(rows, (), sheet=args.report)


def _sim_usage(client: HqClient, args: argparse.Namespace) -> Result:
    params = {"from": args.start, "to": args.end, "site": args.site, "iccid": args.iccid}
    rows = client.get("/api/v1/fleet/reports/usage", **params)["rows"]
    return Result(rows, (), sheet="sim-usage")


def _recordings(commands: Sub) -> None:
    group = commands.add_parser("recordings", help="download call recordings")
    sub = group.add_subparsers(dest="recordings_command", metavar="ACTION", required=True)
    get = leaf(sub, "get", _get_recording, "download a recording (two-channel WAV)", False)
    get.add_argument("site", help="site id")
    get.add_argument("recording_id", help="the recording id a CDR names")
    get.add_argument("-o", "--output", type=Path, help="file to write (RECORDING_ID.wav)")
    get.add_argument("--force", action="store_true", help="replace an existing file")


def _get_recording(client: HqClient, args: argparse.Namespace) -> str:
    out: Path = args.output or Path(f"{args.recording_id}.wav")
    if out.exists() and not args.force:
        raise HqCliError("file-exists", f"{out} exists", EXIT_USAGE, hint="--force replaces it")
    path = f"/api/v1/recordings/{segment(args.site)}/{segment(args.recording_id)}"
    shown = progress(args)
    try:
        digest = client.download(path, out, shown.transfer)
    except OSError as err:
        raise HqCliError("file-unwritable", f"{out}: {err.strerror}", EXIT_USAGE) from None
    finally:
        shown.finish()
    return f"saved {out} ({out.stat().st_size} bytes, sha256 {digest})"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value
