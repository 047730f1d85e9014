"""Console pages every HQ role reads: sites, call search with playback, reports."""

import datetime
from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response

from aggregator import recording_store, reports
from aggregator.api.auth import Principal
from aggregator.console.queue_tables import queue_tables
from aggregator.console.sessions import Session
from aggregator.console.web import PREFIX, Console, scope
from aggregator.directory.model import REGION_MAX
from aggregator.sites import regions
from aggregator.sites.queries import site_rows
from drivers.web.pages import PageError

PAGE_SIZE = 50
DISPOSITIONS = ("answered", "busy", "no-answer", "failed", "cancelled", "interrupted", "refused")
REPORT_DIMENSIONS = (("site", "Per site"), ("trunk", "Per trunk"), ("extension", "Per extension"))


def build_pages(console: Console) -> APIRouter:
    """Sites, calls, recordings and reports."""
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    viewer = console.needs("viewer")

    @router.get("/sites")
    def sites_page(
        request: Request, session: Annotated[Session, viewer], region: str | None = None
    ) -> Response:
        principal = _principal(session)
        if region is not None and len(region) > REGION_MAX:
            raise PageError(400, "bad-region", f"a region is at most {REGION_MAX} characters")
        with console.engine().connect() as conn:
            rows = site_rows(conn, principal.sites)
            by_site = regions.site_regions(conn)
        return console.render(
            request,
            session,
            "sites.html",
            page="sites",
            regions=regions.summarise(rows, by_site),
            region=region,
            region_label=regions.label(region) if region is not None else "",
            sites=rows if region is None else regions.in_region(rows, by_site, region),
            site_region={r.site_id: regions.region_of(r, by_site) for r in rows},
            no_region=regions.NO_REGION,
        )

    @router.get("/cdrs")
    def cdrs_page(
        request: Request,
        session: Annotated[Session, viewer],
        site: str = "",
        number: str = "",
        start: Annotated[str, Query(alias="from")] = "",
        end: Annotated[str, Query(alias="to")] = "",
        disposition: str = "",
        cursor: str = "",
    ) -> Response:
        form = {"site": site, "number": number, "from": start, "to": end}
        form["disposition"] = disposition
        found, next_cursor, problem = _search(console, session, form, cursor or None)
        template = "cdr_rows.html" if request.headers.get("HX-Request") else "cdrs.html"
        return console.render(
            request,
            session,
            template,
            page="cdrs",
            form=form,
            cdrs=found,
            next_cursor=next_cursor,
            problem=problem,
            dispositions=DISPOSITIONS,
        )

    @router.get("/recordings/{site_id}/{recording_id}")
    def recording(
        site_id: str, recording_id: str, session: Annotated[Session, viewer]
    ) -> FileResponse:
        scope(_principal(session), site_id)
        path = _recording_file(console, site_id, recording_id)
        return FileResponse(path, media_type="audio/wav", headers={"Cache-Control": "private"})

    @router.get("/reports")
    def reports_page(
        request: Request,
        session: Annotated[Session, viewer],
        site: str = "",
        start: Annotated[str, Query(alias="from")] = "",
        end: Annotated[str, Query(alias="to")] = "",
    ) -> Response:
        today = datetime.datetime.now(datetime.UTC).date()
        form = {
            "site": site,
            "from": start or (today - datetime.timedelta(days=30)).isoformat(),
            "to": end or (today + datetime.timedelta(days=1)).isoformat(),
        }
        figures, problem = _report(console, session, form)
        return console.render(
            request, session, "reports.html", page="reports", form=form, problem=problem, **figures
        )

    return router


def _principal(session: Session) -> Principal:
    if session.principal is None:
        raise PageError(401, "not-signed-in", "sign in first")
    return session.principal


def _search(
    console: Console, session: Session, form: dict[str, str], cursor: str | None
) -> tuple[list[dict[str, Any]], str | None, str | None]:
    sites = scope(_principal(session), form["site"])
    utc = reports.zone("UTC")
    try:
        flt = reports.CdrFilter(
            sites=sites,
            start_ms=reports.parse_time(form["from"], utc) if form["from"] else None,
            end_ms=reports.parse_time(form["to"], utc) if form["to"] else None,
            number=form["number"].strip() or None,
            disposition=form["disposition"] or None,
        )
        with console.engine().connect() as conn:
            page, next_cursor = reports.search_cdrs(conn, flt, utc, PAGE_SIZE, cursor)
            recording_store.annotate(conn, page)
    except reports.QueryError as err:
        return [], None, str(err)
    return page, next_cursor, None


def _recording_file(console: Console, site_id: str, recording_id: str) -> Any:
    with console.engine().connect() as conn:
        found = recording_store.find(conn, site_id, recording_id)
    if found is None:
        raise PageError(404, "unknown-recording", f"no recording {recording_id} at {site_id}")
    path = console.settings.recordings_dir() / found.path
    if found.state != "available" or not path.is_file():
        raise PageError(410, "recording-gone", "the recording is no longer kept at HQ")
    return path


def _report(
    console: Console, session: Session, form: dict[str, str]
) -> tuple[dict[str, Any], str | None]:
    sites = scope(_principal(session), form["site"])
    utc = reports.zone("UTC")
    try:
        first, last = reports.parse_time(form["from"], utc), reports.parse_time(form["to"], utc)
        span = reports.report_span(first, last, console.settings.reports.max_span_days)
    except reports.QueryError as err:
        return {"tables": {}, "charts": {}}, str(err)
    with console.engine().connect() as conn:
        days = reports.summary(conn, sites, *span, utc, "day")
        hours = reports.hour_of_day_calls(conn, sites, *span, utc)
        tables = {dim: reports.by_key(conn, dim, sites, *span) for dim, _ in REPORT_DIMENSIONS}
        queues = queue_tables(conn, sites, span, utc)
    per_hour = {"labels": [f"{h:02d}:00" for h in range(24)], "calls": hours}
    charts = {"days": _per_day(days), "hours": per_hour, "sites": _per_site(tables)}
    return {"tables": tables, "charts": charts, "dimensions": REPORT_DIMENSIONS, **queues}, None


def _per_day(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    calls: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        calls[row["period"]][0] += row["answered"]
        calls[row["period"]][1] += row["calls"] - row["answered"]
    labels = sorted(calls)
    return {
        "labels": labels,
        "answered": [calls[d][0] for d in labels],
        "unanswered": [calls[d][1] for d in labels],
    }


def _per_site(tables: dict[str, list[dict[str, Any]]]) -> dict[str, list[Any]]:
    rows = tables.get("site", [])
    return {
        "labels": [r["site_id"] for r in rows],
        "asr": [r["asr_percent"] for r in rows],
        "acd": [r["acd_s"] for r in rows],
    }
