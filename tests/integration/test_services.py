"""The appliance and aggregator as real processes: health, metrics, signals, bad start-ups."""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path

import httpx
import pytest

from appliance.store import Outbox, Store
from tests.procs import callmesh, free_port, service, write_yaml


def appliance_config(tmp_path: Path, port: int, **extra: object) -> Path:
    data = {
        "site_id": "branch-1",
        "profile": "branch",
        "data_dir": str(tmp_path / "data"),
        "http": {"host": "127.0.0.1", "port": port},
        **extra,
    }
    return write_yaml(tmp_path / "appliance.yaml", data)


def aggregator_config(tmp_path: Path, port: int) -> Path:
    data = {
        "data_dir": str(tmp_path / "agg"),
        "http": {"host": "127.0.0.1", "port": port},
        "ingest": {"bind": f"tcp://127.0.0.1:{free_port()}"},
    }
    return write_yaml(tmp_path / "aggregator.yaml", data)


def test_appliance_serves_health_and_metrics_then_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    config = appliance_config(tmp_path, port)
    with service(["appliance", "run", "-c", str(config)], tmp_path / "log") as svc:
        health = svc.wait_healthy(f"http://127.0.0.1:{port}/healthz").json()
        assert health["status"] == "ok"
        assert health["site_id"] == "branch-1"
        assert health["checks"]["store"]["ok"] is True
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert 'callmesh_outbox_pending{outbox="cdr"} 0.0' in metrics
        assert "process_resident_memory_bytes" in metrics
        assert 'callmesh_service_info{profile="branch"' in metrics
        assert svc.signal(signal.SIGTERM) == 0
        log = svc.output()
    assert log.index("stopped appliance-http") < log.index("stopped store")
    store = Store.open(tmp_path / "data" / "store")
    assert Outbox(store, "cdr").pending() == 0
    store.close()


def test_appliance_stops_on_sigint_with_json_logs(tmp_path: Path) -> None:
    port = free_port()
    config = appliance_config(tmp_path, port)
    args = ["appliance", "run", "-c", str(config), "--log-json"]
    with service(args, tmp_path / "log") as svc:
        svc.wait_healthy(f"http://127.0.0.1:{port}/healthz")
        assert svc.signal(signal.SIGINT) == 0
        records = [json.loads(line) for line in svc.output().splitlines()]
    assert {"ts", "level", "logger", "msg"} <= set(records[0])
    assert any(r["msg"] == "stopped store" for r in records)


def test_aggregator_serves_health_with_its_database(tmp_path: Path) -> None:
    port = free_port()
    config = aggregator_config(tmp_path, port)
    with service(["aggregator", "run", "-c", str(config)], tmp_path / "log") as svc:
        health = svc.wait_healthy(f"http://127.0.0.1:{port}/healthz").json()
        assert health["checks"]["database"] == {"ok": True, "detail": "sqlite"}
        assert svc.signal(signal.SIGTERM) == 0
    assert (tmp_path / "agg" / "aggregator.db").exists()


def test_port_in_use_exits_1_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = callmesh("appliance", "run", "-c", str(appliance_config(tmp_path, port)))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"callmesh: cannot listen on 127.0.0.1:{port}: address already in use "
        "(another process listens there; stop it or choose another port)"
    )
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            {"profile": "castle"},
            "key 'profile': Input should be 'branch', 'hotel' or 'sim-gateway'",
        ),
        ({"colour": "red"}, "key 'colour': unknown key"),
        ({"store": {"map_size_mb": "big"}}, "key 'store.map_size_mb': Input should be a valid"),
    ],
)
def test_bad_config_exits_2_naming_file_and_key(
    tmp_path: Path, extra: dict[str, object], expected: str
) -> None:
    config = appliance_config(tmp_path, free_port(), **extra)
    result = callmesh("appliance", "run", "-c", str(config))
    assert result.returncode == 2
    assert result.stderr.startswith(f"config error: {config}: {expected}")
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = callmesh("aggregator", "run", "-c", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"config error: {tmp_path / 'nope.yaml'}: no such file"


def test_corrupt_store_exits_1_and_keeps_the_file(tmp_path: Path) -> None:
    config = appliance_config(tmp_path, free_port())
    store_dir = tmp_path / "data" / "store"
    store_dir.mkdir(parents=True)
    (store_dir / "data.mdb").write_bytes(b"\xff" * 65536)
    result = callmesh("appliance", "run", "-c", str(config))
    assert result.returncode == 1
    assert "move data.mdb aside" in result.stderr
    assert "Traceback" not in result.stderr
    assert (store_dir / "data.mdb").read_bytes() == b"\xff" * 65536


def test_unusable_data_dir_exits_1(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("a file, not a directory")
    result = callmesh("appliance", "run", "-c", str(appliance_config(tmp_path, free_port())))
    assert result.returncode == 1
    assert "cannot create data directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_command_prints_effective_settings(tmp_path: Path) -> None:
    config = appliance_config(tmp_path, 9999)
    result = callmesh("appliance", "config", "-c", str(config), "--set", "log.level=debug")
    assert result.returncode == 0, result.stderr
    effective = json.loads(result.stdout)
    assert effective["log"]["level"] == "debug"
    assert effective["http"]["port"] == 9999
