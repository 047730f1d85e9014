"""Every route of the HQ and appliance APIs, read from their OpenAPI documents, with every role.

Each operation must declare its level as ``security: [{"bearer": [level]}]``; a route added
without one fails here. Then every operation is called with no token, an unknown token and
each role's token: 401 without a valid token, 403 ``role-forbidden`` for a role the level
does not admit, anything but 401/403 (a result, a validation error, a 404, 503 while the
PBX is stopped) for a role it admits. The expected matrix below is the one in docs/sync.md
and docs/pbx.md, written out independently of the code.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.integration.api.apps import HQ_TOKENS, LOCAL_TOKENS, SITE, appliance_app, hq_app

HQ_LEVELS = {"viewer": {"admin", "hq-viewer", "site-viewer"}, "admin": {"admin"}}
LOCAL_LEVELS = {
    "viewer": {"admin", "operator", "viewer"},
    "operator": {"admin", "operator"},
    "admin": {"admin"},
}
PUBLIC = {("get", "/healthz"), ("get", "/metrics")}
# Requests that change nothing a person configured, though not sent as GET.
VIEWER_POSTS = {("post", "/api/v1/compliance/check")}
Operation = tuple[str, str, dict[str, Any]]


def operations(app: FastAPI) -> list[Operation]:
    """(method, path, operation) of every route in the app's OpenAPI document."""
    return [
        (method, path, op)
        for path, ops in app.openapi()["paths"].items()
        for method, op in ops.items()
    ]


def declared_level(method: str, path: str, op: dict[str, Any]) -> str | None:
    if (method, path) in PUBLIC:
        assert "security" not in op, f"{method.upper()} {path} is public but declares a role"
        return None
    security = op.get("security")
    assert security is not None, f"{method.upper()} {path} declares no role"
    ((scheme, (level,)),) = (item for entry in security for item in entry.items())
    assert scheme == "bearer"
    return str(level)


def call(client: TestClient, method: str, path: str, op: dict[str, Any], token: str | None) -> Any:
    url = path
    for param in op.get("parameters", []):
        if param["in"] == "path":
            url = url.replace(f"{{{param['name']}}}", SITE)
    body: dict[str, Any] | None = {} if "requestBody" in op else None
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return client.request(method, url, json=body, headers=headers)


def error_id(response: Any) -> str:
    body = response.json()
    found = body.get("detail", body) if isinstance(body, dict) else {}
    return str(found.get("error_id", "")) if isinstance(found, dict) else ""


def check_matrix(app: FastAPI, tokens: dict[str, str], levels: dict[str, set[str]]) -> list[str]:
    """Every way an operation answers other than the matrix says, one line each."""
    wrong: list[str] = []
    with TestClient(app) as client:
        for method, path, op in operations(app):
            level = declared_level(method, path, op)
            if level is None:
                continue
            assert level in levels, f"{method.upper()} {path}: unknown level {level!r}"
            if method != "get" and (method, path) not in VIEWER_POSTS:
                assert level != "viewer", f"{method.upper()} {path} changes state for viewers"
            for who, token in [("no token", None), ("bad token", "x" * 24), *tokens.items()]:
                response = call(client, method, path, op, token)
                got = (response.status_code, error_id(response))
                if token is None:
                    expected = (401, "missing-token")
                elif who not in tokens:
                    expected = (401, "bad-token")
                elif who not in levels[level]:
                    expected = (403, "role-forbidden")
                else:
                    if response.status_code in (401, 403) or response.status_code == 500:
                        wrong.append(f"{method.upper()} {path} as {who}: {got}")
                    continue
                if got != expected:
                    wrong.append(f"{method.upper()} {path} as {who}: {got}, expected {expected}")
    return wrong


@pytest.fixture
def hq(tmp_path: Path) -> Iterator[FastAPI]:
    with hq_app(tmp_path) as (app, _):
        yield app


@pytest.fixture
def appliance(tmp_path: Path) -> Iterator[FastAPI]:
    with appliance_app(tmp_path) as app:
        yield app


def test_every_hq_route_answers_each_role_as_its_declared_level_says(hq: FastAPI) -> None:
    assert check_matrix(hq, HQ_TOKENS, HQ_LEVELS) == []


def test_every_appliance_route_answers_each_role_as_its_declared_level_says(
    appliance: FastAPI,
) -> None:
    assert check_matrix(appliance, LOCAL_TOKENS, LOCAL_LEVELS) == []


def test_a_viewer_token_cannot_place_hang_up_or_record_calls(appliance: FastAPI) -> None:
    viewer = {"Authorization": f"Bearer {LOCAL_TOKENS['viewer']}"}
    requests = [
        ("post", "/api/v1/calls", {"extension": "1001", "number": "021234567"}),
        ("delete", "/api/v1/calls/call-1", None),
        ("put", "/api/v1/calls/call-1/recording", {"recording": True}),
        ("post", "/api/v1/conferences", {"participants": ["1001", "1002"], "on_behalf_of": "1001"}),
    ]
    with TestClient(appliance) as client:
        for method, path, body in requests:
            response = client.request(method, path, json=body, headers=viewer)
            assert (response.status_code, error_id(response)) == (403, "role-forbidden"), path
