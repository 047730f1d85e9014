"""Bearer access: each route's level is enforced and stated in its OpenAPI operation."""

from dataclasses import dataclass
from typing import Annotated, Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from drivers.daemon.access import Access

LEVELS = {"viewer": frozenset({"viewer", "admin"}), "admin": frozenset({"admin"})}


@dataclass(frozen=True)
class Token:
    token: str
    role: str


class Refused(Exception):
    def __init__(self, status: int, error_id: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_id = status, error_id


@pytest.fixture
def client() -> TestClient:
    tokens = [Token("v" * 20, "viewer"), Token("a" * 20, "admin")]
    access = Access(tokens, LEVELS, lambda t: f"{t.role}-grant", Refused)
    app = FastAPI()

    @app.exception_handler(Refused)
    async def _refused(_request: Request, err: Refused) -> JSONResponse:
        return JSONResponse({"error_id": err.error_id}, status_code=err.status)

    @app.get("/read")
    def read(who: Annotated[str, access.needs("viewer")]) -> dict[str, Any]:
        return {"who": who}

    @app.post("/write", dependencies=[access.needs("admin")])
    def write() -> dict[str, Any]:
        return {"done": True}

    return TestClient(app)


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "answer"),
    [
        ("get", "/read", {}, 401, {"error_id": "missing-token"}),
        ("get", "/read", {"Authorization": "Basic " + "v" * 20}, 401,
         {"error_id": "missing-token"}),
        ("get", "/read", {"Authorization": "Bearer " + "x" * 20}, 401, {"error_id": "bad-token"}),
        ("get", "/read", {"Authorization": "Bearer " + "v" * 20}, 200, {"who": "viewer-grant"}),
        ("get", "/read", {"Authorization": "Bearer " + "a" * 20}, 200, {"who": "admin-grant"}),
        ("post", "/write", {"Authorization": "Bearer " + "v" * 20}, 403,
         {"error_id": "role-forbidden"}),
        ("post", "/write", {"Authorization": "Bearer " + "a" * 20}, 200, {"done": True}),
    ],
)  # fmt: skip
def test_each_route_admits_only_the_roles_of_its_level(
    client: TestClient,
    method: str,
    path: str,
    headers: dict[str, str],
    status: int,
    answer: dict[str, Any],
) -> None:
    response = client.request(method, path, headers=headers)
    assert (response.status_code, response.json()) == (status, answer)


def test_the_level_is_stated_in_the_openapi_operation(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["paths"]["/read"]["get"]["security"] == [{"bearer": ["viewer"]}]
    assert spec["paths"]["/write"]["post"]["security"] == [{"bearer": ["admin"]}]
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_an_unknown_level_is_refused_when_the_route_is_built() -> None:
    access = Access([], LEVELS, str, Refused)
    with pytest.raises(ValueError, match="unknown access level 'operator'"):
        access.needs("operator")
