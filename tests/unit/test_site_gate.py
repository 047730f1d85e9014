"""The ingest gate: byte budgets, bans, and cutting exactly the banned site's connections."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from aggregator.site_gate import SiteGate


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(5)
        yield server


def connect(listener: socket.socket) -> tuple[socket.socket, socket.socket]:
    """(the client end, HQ's accepted end) of one loopback TCP connection."""
    client = socket.create_connection(listener.getsockname(), timeout=5)
    accepted, _ = listener.accept()
    accepted.settimeout(5)
    return client, accepted


def gate(registry: CollectorRegistry, clock: Clock) -> SiteGate:
    bans = Counter("banned", "", ["site", "reason"], registry=registry)
    return SiteGate(ban_s=30, byte_rate=1000, byte_burst=10_000, cuts=bans, clock=clock)


def bans(registry: CollectorRegistry, site: str, reason: str) -> float | None:
    return registry.get_sample_value("banned_total", {"site": site, "reason": reason})


def test_a_site_within_its_byte_budget_is_admitted(
    registry: CollectorRegistry, listener: socket.socket
) -> None:
    clock = Clock()
    guard = gate(registry, clock)
    client, accepted = connect(listener)
    with client, accepted:
        for _ in range(20):
            assert guard.admit("site-a", accepted.fileno(), 900)
            clock.now += 1
        assert not guard.banned("site-a")


def test_a_site_past_its_byte_budget_is_banned_and_its_connection_cut(
    registry: CollectorRegistry, listener: socket.socket
) -> None:
    clock = Clock()
    guard = gate(registry, clock)
    bad, bad_end = connect(listener)
    good, good_end = connect(listener)
    with bad, bad_end, good, good_end:
        assert guard.admit("site-good", good_end.fileno(), 100)
        assert guard.admit("site-bad", bad_end.fileno(), 6_000)
        assert not guard.admit("site-bad", bad_end.fileno(), 6_000)
        assert bad.recv(1) == b""
        assert guard.banned("site-bad")
        assert not guard.admit("site-bad", bad_end.fileno(), 1)
        assert bans(registry, "site-bad", "byte-budget") == 1
        good.sendall(b"x")
        assert good_end.recv(1) == b"x"
        assert guard.admit("site-good", good_end.fileno(), 100)


def test_a_ban_ends_after_ban_s_with_a_full_budget(
    registry: CollectorRegistry, listener: socket.socket
) -> None:
    clock = Clock()
    guard = gate(registry, clock)
    client, accepted = connect(listener)
    with client, accepted:
        guard.ban("site-a", "refusal-budget")
        clock.now += 29.9
        assert guard.banned("site-a")
        clock.now += 0.2
        assert not guard.banned("site-a")
        assert guard.admit("site-a", accepted.fileno(), 9_999)
        assert bans(registry, "site-a", "refusal-budget") == 1


def test_a_descriptor_reused_for_another_peer_is_not_cut(
    registry: CollectorRegistry, listener: socket.socket
) -> None:
    guard = gate(registry, Clock())
    old, old_end = connect(listener)
    new, new_end = connect(listener)
    with old, new, new_end:
        fd = old_end.fileno()
        assert guard.admit("site-bad", fd, 1)
        # libzmq closes the old connection and the descriptor number goes to another peer.
        old_end.close()
        os.dup2(new_end.fileno(), fd)
        try:
            guard.ban("site-bad", "refusal-budget")
            new.sendall(b"x")
            assert new_end.recv(1) == b"x"
        finally:
            os.close(fd)


def test_a_closed_descriptor_is_forgotten_without_error(
    registry: CollectorRegistry, listener: socket.socket
) -> None:
    guard = gate(registry, Clock())
    client, accepted = connect(listener)
    with client:
        fd = accepted.fileno()
        assert guard.admit("site-bad", fd, 1)
        accepted.close()
        guard.ban("site-bad", "refusal-budget")
        assert bans(registry, "site-bad", "refusal-budget") == 1


def test_a_new_connection_of_the_site_on_a_reused_descriptor_is_cut(
    registry: CollectorRegistry, listener: socket.socket
) -> None:
    guard = gate(registry, Clock())
    old, old_end = connect(listener)
    new, new_end = connect(listener)
    with old, new, new_end:
        fd = old_end.fileno()
        assert guard.admit("site-bad", fd, 1)
        old_end.close()
        os.dup2(new_end.fileno(), fd)
        try:
            assert guard.admit("site-bad", fd, 1)
            guard.ban("site-bad", "refusal-budget")
            assert new.recv(1) == b""
        finally:
            os.close(fd)
