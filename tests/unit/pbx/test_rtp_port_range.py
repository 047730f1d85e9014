"""The RTP port range against the kernel's ephemeral range (docs/pbx.md, "Sizing the RTP range")."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from appliance.pbx.settings import PbxSettings
from drivers.sip import rtpengine
from drivers.sip.errors import ProcessError
from drivers.sip.rtpengine import RtpengineConfig, RtpengineDriver, ephemeral_overlap


def _kernel_range(tmp_path: Path, text: str) -> Path:
    source = tmp_path / "ip_local_port_range"
    source.write_text(text)
    return source


def test_the_default_range_lies_below_linuxs_default_ephemeral_range(tmp_path: Path) -> None:
    pbx = PbxSettings()
    assert pbx.rtp_port_max - pbx.rtp_port_min + 1 >= 8 * 2000
    assert ephemeral_overlap(pbx.rtp_port_min, pbx.rtp_port_max,
                             _kernel_range(tmp_path, "32768\t60999\n")) is None  # fmt: skip


@pytest.mark.parametrize(
    ("low", "high", "shared"),
    [(30000, 34999, (32768, 34999)), (40000, 44999, (40000, 44999)),
     (60000, 61999, (60000, 60999)), (20000, 32767, None), (61000, 62000, None)],
)  # fmt: skip
def test_the_part_inside_the_ephemeral_range_is_found(
    tmp_path: Path, low: int, high: int, shared: tuple[int, int] | None
) -> None:
    assert ephemeral_overlap(low, high, _kernel_range(tmp_path, "32768 60999")) == shared


@pytest.mark.parametrize("text", ["", "32768", "a b", "1 2 3"])
def test_an_unreadable_kernel_range_is_no_overlap(tmp_path: Path, text: str) -> None:
    assert ephemeral_overlap(30000, 34999, _kernel_range(tmp_path, text)) is None
    assert ephemeral_overlap(30000, 34999, tmp_path / "absent") is None


async def test_starting_inside_the_ephemeral_range_is_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(rtpengine, "EPHEMERAL_RANGE", _kernel_range(tmp_path, "32768 60999"))
    config = RtpengineConfig("127.0.0.1", 1, 30000, 34999, tmp_path / "spool")
    driver = RtpengineDriver(tmp_path, config, binary="callmesh-no-such-rtpengine")
    with caplog.at_level(logging.WARNING), pytest.raises(ProcessError, match="not found"):
        await driver.start()
    assert "RTP ports 32768-34999 lie in the kernel's ephemeral range" in caplog.text
