"""Enrolment codes at HQ: lifecycle, the API's refusals and limits, and ZAP's live keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import zmq
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter

from aggregator.api import mount_api
from aggregator.enrolment import codes
from aggregator.enrolment.limiter import AddressLimiter
from aggregator.settings import AggregatorSettings
from aggregator.site_gate import SiteGate
from aggregator.store.db import create_engine
from aggregator.store.schema import enrolment_codes
from aggregator.zap import SiteKeys
from drivers.sync import keys

TOKEN = "enrol-admin-token-0123456789"
VIEWER = "enrol-viewer-token-0123456789"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def new_key() -> str:
    public, _ = zmq.curve_keypair()
    return public.decode()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    eng = create_engine(f"sqlite:///{tmp_path / 'agg.db'}")
    yield eng
    eng.dispose()


def enrol(engine: sa.Engine, code: str, key: str, max_failures: int = 5) -> str:
    with engine.connect() as conn:
        try:
            return codes.enrol(conn, code, key, max_failures)
        finally:
            conn.commit()


def refusal(engine: sa.Engine, code: str, key: str, max_failures: int = 5) -> str:
    with pytest.raises(codes.EnrolmentRefused) as refused:
        enrol(engine, code, key, max_failures)
    return refused.value.error_id


def make_code(engine: sa.Engine, site_id: str = "site-a", ttl_s: float = 3600) -> str:
    with engine.begin() as conn:
        return codes.create_code(conn, site_id, ttl_s).code


def test_a_code_names_its_site_is_long_and_only_its_hash_is_stored(engine: sa.Engine) -> None:
    code = make_code(engine)
    site_id, secret = codes.split_code(code)
    assert site_id == "site-a"
    assert len(secret) >= 50
    with engine.connect() as conn:
        stored = conn.execute(sa.select(enrolment_codes)).one()
    assert code not in str(tuple(stored))
    assert secret not in str(tuple(stored))
    assert stored.code_hash == codes.code_hash(code)


def test_a_code_enrols_its_site_once(engine: sa.Engine) -> None:
    code, key = make_code(engine), new_key()
    assert enrol(engine, code, key) == "site-a"
    with engine.connect() as conn:
        assert codes.enrolled_keys(conn) == [codes.EnrolledKey("site-a", key, False)]
    assert refusal(engine, code, new_key()) == "code-used"


def test_the_same_code_and_key_enrol_again_so_a_lost_answer_is_retried(engine: sa.Engine) -> None:
    code, key = make_code(engine), new_key()
    enrol(engine, code, key)
    assert enrol(engine, code, key) == "site-a"


def test_an_expired_code_is_refused(engine: sa.Engine) -> None:
    code = make_code(engine, ttl_s=0.001)
    assert refusal(engine, code, new_key()) == "code-expired"


def test_wrong_codes_count_and_void_the_sites_code(engine: sa.Engine) -> None:
    code = make_code(engine)
    wrong = code[:-4] + ("aaaa" if not code.endswith("aaaa") else "bbbb")
    assert [refusal(engine, wrong, new_key(), 3) for _ in range(3)] == ["code-wrong"] * 3
    assert refusal(engine, code, new_key(), 3) == "code-void"


def test_unknown_and_malformed_codes_are_refused(engine: sa.Engine) -> None:
    assert refusal(engine, "site-b." + "a" * 52, new_key()) == "code-unknown"
    assert refusal(engine, "no-secret-here", new_key()) == "code-malformed"


def test_a_new_code_replaces_the_unused_one(engine: sa.Engine) -> None:
    first = make_code(engine)
    second = make_code(engine)
    assert refusal(engine, first, new_key()) == "code-wrong"
    assert enrol(engine, second, new_key()) == "site-a"


def test_a_key_of_another_site_is_refused(engine: sa.Engine) -> None:
    key = new_key()
    enrol(engine, make_code(engine, "site-a"), key)
    assert refusal(engine, make_code(engine, "site-b"), key) == "key-taken"


def test_re_enrolling_replaces_the_key_and_revoke_ends_it(engine: sa.Engine) -> None:
    old, new = new_key(), new_key()
    enrol(engine, make_code(engine), old)
    enrol(engine, make_code(engine), new)
    with engine.begin() as conn:
        assert codes.enrolled_keys(conn) == [codes.EnrolledKey("site-a", new, False)]
        assert codes.revoke(conn, "site-a")
        assert not codes.revoke(conn, "site-a")
        assert codes.enrolled_keys(conn) == [codes.EnrolledKey("site-a", new, True)]


def test_the_limiter_allows_a_burst_per_address_then_refills() -> None:
    now = [0.0]
    limiter = AddressLimiter(3, clock=lambda: now[0])
    assert [limiter.allow("10.0.0.1") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("10.0.0.2")
    now[0] += 20
    assert limiter.allow("10.0.0.1")
    assert not limiter.allow("10.0.0.1")


@pytest.fixture
def api(tmp_path: Path, engine: sa.Engine) -> TestClient:
    keys.generate(tmp_path / "keys", "aggregator")
    settings = AggregatorSettings.model_validate(
        {
            "data_dir": str(tmp_path),
            "api": {
                "tokens": [
                    {"name": "a", "token": TOKEN, "role": "admin"},
                    {"name": "v", "token": VIEWER, "role": "hq-viewer"},
                ]
            },
            "ingest": {"bind": "tcp://0.0.0.0:5570"},
            "enrolment": {"endpoints": ["tcp://hq.example:5570"], "attempts_per_minute": 4},
        }
    )
    app = FastAPI()
    mount_api(app, settings, lambda: engine)
    return TestClient(app)


def test_the_api_creates_a_code_and_a_box_enrols_with_it(api: TestClient, tmp_path: Path) -> None:
    made = api.post("/api/v1/sites/site-a/enrolment", headers=ADMIN)
    assert made.status_code == 200
    key = new_key()
    answer = api.post("/api/v1/enrol", json={"code": made.json()["code"], "public_key": key})
    assert answer.status_code == 200
    server = keys.load_public(tmp_path / "keys" / "aggregator.key").decode()
    assert answer.json() == {
        "site_id": "site-a",
        "server_public_key": server,
        "endpoints": ["tcp://hq.example:5570"],
    }
    again = api.post("/api/v1/enrol", json={"code": made.json()["code"], "public_key": new_key()})
    assert (again.status_code, again.json()["error_id"]) == (403, "code-used")


def test_only_admins_create_codes_and_revoke(api: TestClient) -> None:
    viewer = {"Authorization": f"Bearer {VIEWER}"}
    assert api.post("/api/v1/sites/site-a/enrolment", headers=viewer).status_code == 403
    assert api.post("/api/v1/sites/site-a/enrolment").status_code == 401
    assert api.delete("/api/v1/sites/site-a/key", headers=viewer).status_code == 403
    bad_site = api.post("/api/v1/sites/Bad_Site/enrolment", headers=ADMIN)
    assert bad_site.json()["error_id"] == "invalid-request"


def test_revoking_a_site_without_an_enrolled_key_is_not_found(api: TestClient) -> None:
    gone = api.delete("/api/v1/sites/site-a/key", headers=ADMIN)
    assert (gone.status_code, gone.json()["error_id"]) == (404, "no-enrolled-key")


def test_enrol_attempts_are_rate_limited_per_address(api: TestClient) -> None:
    body = {"code": "site-a." + "a" * 52, "public_key": new_key()}
    answers = [api.post("/api/v1/enrol", json=body).json()["error_id"] for _ in range(5)]
    assert answers == ["code-unknown"] * 4 + ["enrol-rate-limited"]


def test_a_malformed_public_key_is_refused(api: TestClient) -> None:
    answer = api.post("/api/v1/enrol", json={"code": "site-a." + "a" * 52, "public_key": "x"})
    assert (answer.status_code, answer.json()["error_id"]) == (422, "invalid-request")


def site_keys(tmp_path: Path, yaml_key: str) -> tuple[SiteKeys, Counter]:
    settings = AggregatorSettings.model_validate(
        {"data_dir": str(tmp_path), "ingest": {"sites": [{"site_id": "y", "public_key": yaml_key}]}}
    )
    registry = CollectorRegistry()
    cuts = Counter("cuts", "cuts", ["site", "reason"], registry=registry)
    rejected = Counter("rejected", "rejected", ["reason"], registry=registry)
    return SiteKeys(settings, rejected, SiteGate(60, 1e9, 1e9, cuts)), cuts


def test_zap_admits_yaml_and_enrolled_keys_and_cuts_a_revoked_site(tmp_path: Path) -> None:
    yaml_key, enrolled = new_key(), new_key()
    zap, cuts = site_keys(tmp_path, yaml_key)
    assert zap.callback("callmesh", yaml_key.encode())
    assert not zap.callback("callmesh", enrolled.encode())
    zap.apply([codes.EnrolledKey("site-a", enrolled, False)])
    assert zap.callback("callmesh", enrolled.encode())
    assert zap.site_of(enrolled.encode()) == "site-a"
    zap.apply([codes.EnrolledKey("site-a", enrolled, True)])
    assert not zap.callback("callmesh", enrolled.encode())
    assert zap.site_of(enrolled.encode()) is None
    assert cuts.labels(site="site-a", reason="key-revoked")._value.get() == 1
    assert zap.callback("callmesh", yaml_key.encode())


def test_the_refresh_reads_the_keys_only_after_a_change(engine: sa.Engine) -> None:
    read = codes.EnrolledKeyReader(lambda: engine)
    assert read() == []
    assert read() is None
    first, second = new_key(), new_key()
    enrol(engine, make_code(engine), first)
    assert read() == [codes.EnrolledKey("site-a", first, False)]
    assert read() is None
    enrol(engine, make_code(engine), second)
    assert read() == [codes.EnrolledKey("site-a", second, False)]
    with engine.begin() as conn:
        codes.revoke(conn, "site-a")
    assert read() == [codes.EnrolledKey("site-a", second, True)]
    assert read() is None
