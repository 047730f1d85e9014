"""The service runtime speaks systemd's notify protocol over a real datagram socket."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.daemon.lifecycle import run_until_signalled
from drivers.daemon.sd_notify import NotifyTarget, SystemdNotifier


class Recorder:
    """A component with a slow start that notes when it starts and stops."""

    name = "recorder"

    def __init__(self, events: list[str]) -> None:
        self.events = events

    async def start(self) -> None:
        await asyncio.sleep(0.5)
        self.events.append("start")

    async def stop(self) -> None:
        self.events.append("stop")


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.setblocking(False)
    yield sock
    sock.close()


async def _receive(sock: socket.socket) -> str:
    data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 4096), 10.0)
    return data.decode()


async def test_watchdog_pings_from_start_up_ready_once_started_stopping_on_stop(
    notify_socket: socket.socket,
) -> None:
    events: list[str] = []
    stop = asyncio.Event()
    target = NotifyTarget(address=notify_socket.getsockname(), watchdog_s=0.2)
    service = asyncio.create_task(
        run_until_signalled([Recorder(events)], stop, SystemdNotifier(target))
    )

    messages = [await _receive(notify_socket)]
    while messages[-1] != "READY=1":
        messages.append(await _receive(notify_socket))
    assert events == ["start"]
    pings = [await _receive(notify_socket) for _ in range(3)]
    stop.set()
    await asyncio.wait_for(service, 10.0)

    assert len(messages) > 1
    assert set(messages[:-1]) == {"WATCHDOG=1"}
    assert pings == ["WATCHDOG=1"] * 3
    assert await _receive(notify_socket) == "STOPPING=1"
    assert events == ["start", "stop"]


async def test_abstract_notify_socket_receives_ready(tmp_path: Path) -> None:
    name = f"callmesh-test-{tmp_path.name}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.setblocking(False)
        notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": "@" + name})
        stop = asyncio.Event()
        stop.set()

        await asyncio.wait_for(run_until_signalled([], stop, notifier), 10.0)

        assert await _receive(sock) == "READY=1"
        assert await _receive(sock) == "STOPPING=1"
