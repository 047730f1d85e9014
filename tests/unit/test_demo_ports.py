"""The demo's ports: helpers below the kernel's ephemeral range, RTP above it, none twice."""

from __future__ import annotations

import itertools
import socket
from pathlib import Path

from appliance.demo.plan import HELPER_PORTS, RTP_RANGES, PortBook
from drivers.sip.rtpengine import ephemeral_overlap


def ephemeral_low() -> int:
    return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def test_helper_ports_are_distinct_and_below_the_ephemeral_range(tmp_path: Path) -> None:
    book = PortBook(tmp_path)
    ports = [book.helper(), book.helper(socket.SOCK_DGRAM), book.helper()]
    assert len(set(ports)) == 3
    assert all(port in HELPER_PORTS and port < ephemeral_low() for port in ports)


def test_a_helper_port_held_by_another_process_is_skipped(tmp_path: Path) -> None:
    first = PortBook(tmp_path).helper(socket.SOCK_DGRAM)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", first))
        assert PortBook(tmp_path).helper(socket.SOCK_DGRAM) != first


def test_rtp_ranges_are_outside_the_ephemeral_range_and_apart(tmp_path: Path) -> None:
    kernel = tmp_path / "ip_local_port_range"
    kernel.write_text("32768\t60999\n")
    ranges = sorted(RTP_RANGES.values())
    assert all(ephemeral_overlap(low, high, kernel) is None for low, high in ranges)
    assert all(high < following[0] for (_, high), following in itertools.pairwise(ranges))
    assert all(high - low + 1 >= 8 * 100 for low, high in ranges)
