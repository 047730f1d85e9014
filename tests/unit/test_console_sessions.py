"""Console sessions: random ids, idle expiry, a bounded store, CSRF tokens per session."""

from __future__ import annotations

from aggregator.api.auth import Principal
from aggregator.console.sessions import SessionStore

ADMIN = Principal("ops", "admin", None)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_each_session_has_its_own_random_id_and_csrf_token() -> None:
    store = SessionStore(60, 10)
    first, second = store.start(ADMIN), store.start(ADMIN)
    assert first.session_id != second.session_id
    assert first.csrf_token != second.csrf_token
    assert len(first.session_id) >= 43  # 32 random bytes


def test_a_session_ends_after_the_idle_time_and_each_request_extends_it() -> None:
    clock = Clock()
    store = SessionStore(60, 10, clock)
    session = store.start(ADMIN)
    clock.now += 50
    assert store.get(session.session_id) is session
    clock.now += 50
    assert store.get(session.session_id) is session
    clock.now += 61
    assert store.get(session.session_id) is None
    assert len(store) == 0


def test_the_store_keeps_at_most_max_sessions_dropping_the_least_recently_used() -> None:
    store = SessionStore(60, 2)
    old, used = store.start(None), store.start(ADMIN)
    store.get(old.session_id)
    store.get(used.session_id)
    store.start(None)
    assert store.get(old.session_id) is None
    assert store.get(used.session_id) is used


def test_signing_out_forgets_the_session() -> None:
    store = SessionStore(60, 10)
    session = store.start(ADMIN)
    store.end(session.session_id)
    assert store.get(session.session_id) is None
    assert store.get(None) is None


def test_only_the_sessions_own_csrf_token_is_accepted() -> None:
    store = SessionStore(60, 10)
    session, other = store.start(ADMIN), store.start(ADMIN)
    assert session.csrf_ok(session.csrf_token)
    assert not session.csrf_ok(other.csrf_token)
    assert not session.csrf_ok("")
    assert not session.csrf_ok(None)
