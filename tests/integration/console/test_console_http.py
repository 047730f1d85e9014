"""The console's HTTP contract, on the aggregator app its composition root builds."""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from aggregator.store.schema import sites
from tests.integration.api.apps import HQ_TOKENS, SITE, hq_app


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    with hq_app(tmp_path) as (built, _):
        yield built


def sign_in(client: TestClient, role: str = "admin") -> str:
    """Sign in through the form; the new session's CSRF token."""
    form = client.get("/console/sign-in")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    answer = client.post(
        "/console/sign-in",
        data={"token": HQ_TOKENS[role], "csrf_token": token.group(1)},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    page = client.get("/console/dnc")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None
    return csrf.group(1)


def test_the_session_cookie_is_httponly_strict_and_secure_over_https(app: FastAPI) -> None:
    with TestClient(app, base_url="https://hq.example") as client:
        cookie = client.get("/console/sign-in").headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Secure" in cookie
    assert "Path=/console" in cookie
    with TestClient(app) as client:
        assert "Secure" not in client.get("/console/sign-in").headers["set-cookie"]


def test_signing_in_gives_a_new_session_id_and_signing_out_ends_it(app: FastAPI) -> None:
    with TestClient(app) as client:
        client.get("/console/sign-in")
        anonymous = client.cookies["callmesh_console"]
        csrf = sign_in(client)
        signed_in = client.cookies["callmesh_console"]
        assert signed_in != anonymous
        client.post("/console/sign-out", data={"csrf_token": csrf}, follow_redirects=False)
        client.cookies.set("callmesh_console", signed_in, path="/console")
        answer = client.get("/console/sites", follow_redirects=False)
    assert (answer.status_code, answer.headers["location"]) == (303, "/console/sign-in")


def test_an_unknown_token_is_refused_on_the_form(app: FastAPI) -> None:
    with TestClient(app) as client:
        form = client.get("/console/sign-in").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert csrf is not None
        data = {"token": "not-a-token-0123456789", "csrf_token": csrf.group(1)}
        answer = client.post("/console/sign-in", data=data)
    assert answer.status_code == 401
    assert "not known" in answer.text


def test_a_viewer_may_not_post_admin_actions_even_with_its_csrf_token(app: FastAPI) -> None:
    with TestClient(app) as client:
        csrf = sign_in(client, "hq-viewer")
        answer = client.post("/console/dnc", data={"csrf_token": csrf, "number": "+4930999"})
    assert answer.status_code == 403
    assert 'data-error-id="role-forbidden"' in answer.text


def test_pages_forbid_inline_script_and_other_origins(app: FastAPI) -> None:
    with TestClient(app) as client:
        sign_in(client)
        headers = client.get("/console/reports").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store"


def test_only_the_two_libraries_are_served_from_node_modules(app: FastAPI) -> None:
    with TestClient(app) as client:
        assert client.get("/console/vendor/htmx.min.js").status_code == 200
        assert client.get("/console/vendor/chart.umd.min.js").status_code == 200
        assert client.get("/console/vendor/package.json").status_code == 404
        assert client.get("/console/vendor/..%2Fpackage.json").status_code == 404


def test_live_activity_counts_the_calls_each_visible_site_reports(tmp_path: Path) -> None:
    reported = {SITE: 3, "site-b": 5}
    with hq_app(tmp_path) as (built, engine), TestClient(built) as client:
        with engine.begin() as conn:
            for site_id, calls in reported.items():
                conn.execute(
                    sa.update(sites)
                    .where(sites.c.site_id == site_id)
                    .values(last_seen_ms=int(time.time() * 1000), health={"calls_active": calls})
                )
        sign_in(client, "site-viewer")
        page = client.get("/console/activity")
        live = client.get("/console/activity", headers={"HX-Request": "true"})
        sign_in(client, "admin")
        everywhere = client.get("/console/activity", headers={"HX-Request": "true"})
        with engine.begin() as conn:
            conn.execute(sa.update(sites).values(health={"calls_active": "many"}))
        garbled = client.get("/console/activity", headers={"HX-Request": "true"})
    assert 'data-site="site-b"' not in page.text
    assert 'data-calls="3"' in page.text
    assert '<strong id="calls-total">3</strong>' in page.text
    assert "<html" in page.text
    assert "<html" not in live.text
    assert 'hx-trigger="every 2s"' in live.text
    assert '<strong id="calls-total">8</strong>' in everywhere.text
    assert '<strong id="calls-total">0</strong>' in garbled.text
    assert garbled.text.count("no PBX") == 2


def _queue(name: str, waiting: int) -> dict[str, object]:
    return {"name": name, "number": "700", "waiting": waiting,
            "oldest_entered": time.time() - 30 if waiting else None,
            "agents": {"available": 1, "ringing": 0, "on-call": 2, "wrap-up": 0, "paused": 1,
                       "logged-out": 0},
            "answered": 7, "abandoned": 1, "service_level_percent": 75.0,
            "service_level_s": 20.0}  # fmt: skip


def test_the_wallboard_and_the_api_show_the_queues_of_visible_sites_only(tmp_path: Path) -> None:
    reported = {SITE: [_queue("sales", 3)], "site-b": [_queue("support", 4)]}
    with hq_app(tmp_path) as (built, engine), TestClient(built) as client:
        with engine.begin() as conn:
            for site_id, queues in reported.items():
                conn.execute(
                    sa.update(sites)
                    .where(sites.c.site_id == site_id)
                    .values(last_seen_ms=int(time.time() * 1000), health={"queues": queues})
                )
        sign_in(client, "site-viewer")
        page = client.get("/console/wallboard")
        api = client.get(
            "/api/v1/queues/live", headers={"Authorization": f"Bearer {HQ_TOKENS['site-viewer']}"}
        )
        sign_in(client, "admin")
        everywhere = client.get("/console/wallboard", headers={"HX-Request": "true"})
        with engine.begin() as conn:
            conn.execute(sa.update(sites).values(health={"queues": [_queue("sales", -2)]}))
        garbled = client.get("/console/wallboard", headers={"HX-Request": "true"})
    assert "<html" in page.text
    assert 'data-queue="sales"' in page.text
    assert 'data-site="site-b"' not in page.text
    assert '<span class="big" data-stat="waiting">3</span>' in page.text
    assert re.search(r'data-stat="longest-wait">3\ds</span>', page.text)
    assert '<dd data-agents="on-call">2</dd>' in page.text
    assert '<strong id="waiting-total">7</strong>' in everywhere.text
    assert 'hx-trigger="every 1s"' in everywhere.text
    assert "No online site reports a queue." in garbled.text
    assert api.status_code == 200
    (queue,) = api.json()["queues"]
    assert (queue["site_id"], queue["queue"], queue["waiting"]) == (SITE, "sales", 3)
    assert queue["agents"]["on-call"] == 2
    assert 29 <= queue["longest_wait_s"] < 40


def test_the_sites_page_shows_each_sites_last_upgrade(tmp_path: Path) -> None:
    upgrade = {
        "from_version": "0.1.0",
        "to_version": "0.1.2<b>",
        "result": "rolled-back",
        "error_id": "health-check-failed",
        "finished": "2026-12-07T06:01:00+00:00",
    }
    with hq_app(tmp_path) as (built, engine), TestClient(built) as client:
        with engine.begin() as conn:
            conn.execute(
                sa.update(sites).where(sites.c.site_id == SITE).values(health={"upgrade": upgrade})
            )
        sign_in(client, "admin")
        page = client.get("/console/sites").text
    assert "0.1.0 → 0.1.2&lt;b&gt; rolled-back (health-check-failed)" in page
    assert 'title="2026-12-07T06:01:00+00:00"' in page


def test_the_report_charts_count_each_call_once_by_day_and_by_hour_of_day(app: FastAPI) -> None:
    with TestClient(app) as client:
        sign_in(client, "site-viewer")
        page = client.get("/console/reports", params={"from": "2025-11-24", "to": "2025-11-25"})
    found = re.search(r'<script type="application/json" id="chart-data">(.*?)</script>', page.text)
    assert found is not None, page.text
    charts = json.loads(html.unescape(found.group(1)))
    assert charts["days"] == {"labels": ["2025-11-24"], "answered": [15], "unanswered": [5]}
    assert charts["hours"]["labels"][16] == "16:00"
    assert charts["hours"]["calls"] == [20 if hour == 16 else 0 for hour in range(24)]


def test_sites_are_grouped_by_the_region_the_directory_form_gives_them(tmp_path: Path) -> None:
    with hq_app(tmp_path) as (built, engine), TestClient(built) as client:
        with engine.begin() as conn:
            conn.execute(sa.update(sites).values(last_seen_ms=int(time.time() * 1000)))
        csrf = sign_in(client, "admin")
        entry = {"csrf_token": csrf, "id": SITE, "sip_address": "10.1.0.1", "timezone": "UTC"}
        bad = client.post("/console/directory/sites/+new", data={**entry, "region": "-x"})
        saved = client.post(
            "/console/directory/sites/+new",
            data={**entry, "region": "eu-central"},
            follow_redirects=False,
        )
        directory = client.get("/console/directory").text
        grouped = client.get("/console/sites").text
        one = client.get("/console/sites", params={"region": "eu-central"}).text
        none = client.get("/console/sites", params={"region": "-"}).text
        too_long = client.get("/console/sites", params={"region": "x" * 65})
        sign_in(client, "site-viewer")
        scoped = client.get("/console/sites").text
    assert bad.status_code == 422
    assert '<p class="error" id="e-region" data-field="region">a region is printable' in bad.text
    assert saved.status_code == 303, saved.text
    assert "<td>eu-central</td>" in directory
    tiles = re.findall(r'class="region[^"]*" id="region-\d" data-region="([^"]+)"', grouped)
    assert tiles == ["eu-central", "-"]
    assert 'href="/console/sites?region=eu-central"' in grouped
    assert "No region" in grouped
    assert re.findall(r'<tr data-site="([^"]+)"', one) == [SITE]
    assert "in eu-central" in one
    assert re.findall(r'<tr data-site="([^"]+)"', none) == ["site-b"]
    assert (too_long.status_code, "bad-region" in too_long.text) == (400, True)
    assert re.findall(r'data-region="([^"]+)" href', scoped) == ["eu-central"]
    assert 'data-site="site-b"' not in scoped
