"""The Debian packages install on a fresh Debian 12 and their services run under systemd.

One run: ``image/build-deb`` builds the packages while mmdebstrap builds a minimal
bookworm (cached in ``CALLMESH_DEB_CACHE`` when set, else once per run); apt installs
the packages into a private copy of it, resolving Kamailio, rtpengine and Python from
Debian; the tree boots with systemd as PID 1 in systemd-nspawn (loopback only); both
units are enabled, so they start at boot. Last, ``callmesh upgrade`` takes the box to
N+1 and then to an N+2 whose appliance fails at start, which is rolled back to N+1
(both made from the session's packages by ``deb_release.next_release``). Measured on the
2-core development machine: docs/development.md.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.deb_release import next_release
from tests.integration.debian_container import (
    Container,
    bookworm_rootfs,
    booted,
    finish_rootfs,
    mounts_under,
    stop_rootfs,
)
from tests.release_key import ReleaseKey

pytestmark = [
    pytest.mark.timeout(1200),
    pytest.mark.skipif(os.geteuid() != 0, reason="systemd-nspawn and mmdebstrap need root"),
    pytest.mark.skipif(
        not (shutil.which("mmdebstrap") and shutil.which("systemd-nspawn")),
        reason="needs mmdebstrap and systemd-container (./run test installs them)",
    ),
]

UNITS = ("callmesh-appliance.service", "callmesh-aggregator.service")
APPLIANCE = {
    "site_id": "deb-test",
    "profile": "branch",
    "data_dir": "/var/lib/callmesh",
    "http": {"host": "127.0.0.1", "port": 8080},
    "sip": {
        "domain": "127.0.0.1",
        "extensions": [{"number": "1001", "password": "secret-1001-x", "name": "Desk"}],
    },
    "pbx": {"enabled": True, "sip_host": "127.0.0.1"},
    # A queue, so that the appliance serves its agent pages (and their htmx).
    "contact": {"queues": {"sales": {"number": "600", "agents": [{"extension": "1001"}]}}},
}
CAP_NET_ADMIN = 1 << 12


def _aggregator_config() -> dict[str, object]:
    token = secrets.token_hex(16)
    return {
        "data_dir": "/var/lib/callmesh-aggregator",
        "http": {"host": "127.0.0.1", "port": 8800},
        "api": {"tokens": [{"name": "admin", "token": token, "role": "admin"}]},
    }


@pytest.fixture(scope="module")
def timings() -> dict[str, float]:
    return {}


@pytest.fixture(scope="module")
def packages_and_rootfs(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    timings: dict[str, float],
) -> Iterator[tuple[list[Path], Path]]:
    """The session's packages and the bookworm base, built at the same time."""
    cache_env = os.environ.get("CALLMESH_DEB_CACHE")
    cache = Path(cache_env) if cache_env else tmp_path_factory.mktemp("deb-cache")
    started = time.monotonic()
    rootfs = bookworm_rootfs(cache)
    try:
        debs: list[Path] = request.getfixturevalue("callmesh_debs")
    except BaseException:
        stop_rootfs(rootfs)
        raise
    tarball = finish_rootfs(rootfs, cache)
    timings["build-deb and mmdebstrap"] = time.monotonic() - started
    try:
        yield debs, tarball
    finally:
        if not cache_env:
            shutil.rmtree(cache)


@pytest.fixture(scope="module")
def container(
    packages_and_rootfs: tuple[list[Path], Path],
    tmp_path_factory: pytest.TempPathFactory,
    timings: dict[str, float],
) -> Iterator[Container]:
    """The packages installed with apt, configured, enabled and booted."""
    debs, tarball = packages_and_rootfs
    work = tmp_path_factory.mktemp("container")
    started = time.monotonic()
    box = Container(tarball, work / "root", f"callmesh-deb-{os.getpid()}")
    box.install(debs)
    timings["apt install"] = time.monotonic() - started
    _configure(box.root)
    box.offline(["systemctl", "enable", *UNITS])
    started = time.monotonic()
    try:
        with booted(box):
            box.wait_for(f"systemctl is-active --quiet {' '.join(UNITS)}", timeout=300)
            timings["boot to both units active"] = time.monotonic() - started
            yield box
    finally:
        assert mounts_under(work) == []
        shutil.rmtree(work)
        print(f"\ndebian package test timings (s): {timings}")


def _configure(root: Path) -> None:
    """Replace the sample configs (kept mode 0640 root:callmesh) with loopback ones."""
    (root / "etc/callmesh/appliance.yaml").write_text(yaml.safe_dump(APPLIANCE))
    (root / "etc/callmesh/aggregator.yaml").write_text(yaml.safe_dump(_aggregator_config()))


def _healthz(box: Container, port: int) -> str:
    probe = (
        "python3 -c 'import urllib.request as u; "
        f'r = u.urlopen("http://127.0.0.1:{port}/healthz", timeout=5); '
        "print(r.status, r.read().decode())'"
    )
    return box.wait_for(probe, timeout=120).stdout


def _get(box: Container, port: int, path: str) -> list[str]:
    """Status, content type and the first bytes of a GET inside the box."""
    probe = (
        "python3 -c 'import urllib.request as u; "
        f'r = u.urlopen("http://127.0.0.1:{port}{path}", timeout=5); '
        'print(r.status); print(r.headers["content-type"]); '
        'print(r.read(4096).decode(errors="replace"))\''
    )
    done = box.sh(probe)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def _stat(box: Container, *paths: str) -> list[str]:
    done = box.sh(f"stat -c '%U:%G %a %n' {' '.join(paths)}")
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def _main_pid_status(box: Container, unit: str) -> dict[str, str]:
    done = box.sh(f"cat /proc/$(systemctl show -p MainPID --value {unit})/status")
    assert done.returncode == 0, done.stderr
    fields = (line.split(":", 1) for line in done.stdout.splitlines())
    return {key: value.strip() for key, value in fields}


def test_both_services_start_at_boot_and_pass_healthz(container: Container) -> None:
    appliance = _healthz(container, 8080)
    aggregator = _healthz(container, 8800)

    assert appliance.startswith("200 ")
    assert '"pbx"' in appliance
    assert aggregator.startswith("200 ")


def test_units_are_notify_services_with_a_watchdog_and_no_restarts(container: Container) -> None:
    for unit in UNITS:
        shown = container.sh(f"systemctl show -p Type,WatchdogUSec,NRestarts,User {unit}")

        assert sorted(shown.stdout.split()) == [
            "NRestarts=0",
            "Type=notify",
            "User=callmesh",
            "WatchdogUSec=1min",
        ], shown.stdout


def test_services_run_as_callmesh_with_only_the_capabilities_they_need(
    container: Container,
) -> None:
    appliance = _main_pid_status(container, UNITS[0])
    aggregator = _main_pid_status(container, UNITS[1])
    groups = container.sh("id -nG callmesh").stdout.split()

    assert int(appliance["CapEff"], 16) == CAP_NET_ADMIN
    assert int(appliance["CapBnd"], 16) == CAP_NET_ADMIN
    assert int(aggregator["CapEff"], 16) == 0
    assert int(aggregator["CapBnd"], 16) == 0
    assert appliance["NoNewPrivs"] == aggregator["NoNewPrivs"] == "1"
    assert set(groups) >= {"callmesh", "dialout"}


def test_config_is_root_owned_group_readable_and_state_belongs_to_callmesh(
    container: Container,
) -> None:
    configs = _stat(container, "/etc/callmesh/appliance.yaml", "/etc/callmesh/aggregator.yaml")
    state = _stat(container, "/var/lib/callmesh", "/var/lib/callmesh-aggregator")
    keys = container.wait_for(
        "stat -c '%U:%G %a' /var/lib/callmesh-aggregator/keys/aggregator.key_secret", timeout=30
    ).stdout
    foreign = container.sh("find /var/lib/callmesh /var/lib/callmesh-aggregator ! -user callmesh")
    venv = container.sh("find /opt/callmesh ! -user root -o -perm /022 -type f | head -5")

    assert configs == [
        "root:callmesh 640 /etc/callmesh/appliance.yaml",
        "root:callmesh 640 /etc/callmesh/aggregator.yaml",
    ]
    assert state == [
        "callmesh:callmesh 750 /var/lib/callmesh",
        "callmesh:callmesh 750 /var/lib/callmesh-aggregator",
    ]
    assert keys.strip() == "callmesh:callmesh 600"
    assert foreign.stdout == ""
    assert venv.stdout == ""


@pytest.mark.parametrize(
    ("port", "library", "marker"),
    [
        (8800, "htmx.min.js", "htmx"),
        (8800, "chart.umd.min.js", "Chart.js"),
        (8080, "htmx.min.js", "htmx"),
    ],
    ids=["hq-htmx", "hq-chart", "appliance-htmx"],
)
def test_the_installed_consoles_serve_their_javascript_libraries(
    container: Container, port: int, library: str, marker: str
) -> None:
    status, content_type, *body = _get(container, port, f"/console/vendor/{library}")

    assert status == "200"
    assert content_type.startswith("text/javascript")
    assert marker in "\n".join(body)


def test_the_package_ships_only_the_served_libraries_and_their_licences(
    container: Container,
) -> None:
    listed = container.sh(
        "cd /opt/callmesh/venv/lib/python3*/site-packages/aggregator/console/node_modules"
        " && find . -type f | sort"
    )

    assert listed.stdout.split() == [
        "./chart.js/LICENSE.md",
        "./chart.js/dist/chart.umd.min.js",
        "./htmx.org/LICENSE",
        "./htmx.org/dist/htmx.min.js",
    ]


def _resource_trackers(box: Container, unit: str) -> set[str]:
    """PIDs of multiprocessing's resource tracker in ``unit`` (it exits with its parent)."""
    listing = box.sh(
        f"for c in $(grep -l '{unit}' /proc/[0-9]*/cgroup); do d=${{c%/cgroup}}; "
        "tr '\\0' ' ' < $d/cmdline | grep -q resource_tracker && echo ${d#/proc/}; done"
    )
    return set(listing.stdout.split())


def test_systemctl_stop_is_clean(container: Container) -> None:
    trackers = _resource_trackers(container, UNITS[0])
    stopped = container.sh(f"systemctl stop {' '.join(UNITS)}", timeout=180)
    results = [
        container.sh(f"systemctl show -p Result,ExecMainStatus,ActiveState {unit}").stdout
        for unit in UNITS
    ]
    journal = container.sh(f"journalctl -b --no-pager -u {' -u '.join(UNITS)}").stdout
    killed = set(re.findall(r"Killing process (\d+) .* with signal SIGKILL", journal))

    assert stopped.returncode == 0, stopped.stderr
    for shown in results:
        assert sorted(shown.split()) == [
            "ActiveState=inactive",
            "ExecMainStatus=0",
            "Result=success",
        ], shown
    assert killed <= trackers, journal
    assert "left-over process" not in journal
    assert "restarting" not in journal, "a child of the appliance died before it was stopped"


def test_debian_kamailio_and_rtpengine_services_are_left_to_the_appliance(
    container: Container,
) -> None:
    enabled = container.sh("systemctl is-enabled kamailio.service rtpengine-daemon.service")
    active = container.sh("systemctl is-active kamailio.service rtpengine-daemon.service")

    assert enabled.stdout.split() == ["disabled", "disabled"]
    assert active.stdout.split() == ["inactive", "inactive"]


@pytest.fixture(scope="module")
def next_releases(
    packages_and_rootfs: tuple[list[Path], Path], container: Container, release_signer: ReleaseKey
) -> dict[str, str]:
    """N+1 (healthy) and N+2 (its appliance fails at start), copied into the container."""
    debs, _ = packages_and_rootfs
    base = _installed(container)["callmesh"]
    made = {}
    for step, broken in ((1, False), (2, True)):
        version = f"{base}+u{step}"
        out = container.root / "srv" / f"release-{step}"
        next_release(debs, version, out, release_signer, broken=broken)
        made[version] = f"/srv/release-{step}"
    return made


@pytest.fixture(scope="module")
def first_upgrade(
    container: Container, next_releases: dict[str, str], timings: dict[str, float]
) -> tuple[str, subprocess.CompletedProcess[str]]:
    """The running N upgraded to N+1 (the stop test above stopped the services)."""
    started = container.sh(f"systemctl start {' '.join(UNITS)}", timeout=240)
    assert started.returncode == 0, container.diagnose()
    version, where = next(iter(next_releases.items()))
    began = time.monotonic()
    done = container.sh(f"callmesh upgrade {where}/*.deb", timeout=900)
    timings["upgrade N to N+1 (keeps N with dpkg-repack)"] = time.monotonic() - began
    return version, done


def test_a_release_signed_by_a_key_the_box_does_not_trust_is_refused(
    packages_and_rootfs: tuple[list[Path], Path], container: Container, stranger_key: ReleaseKey
) -> None:
    debs, _ = packages_and_rootfs
    before = _installed(container)
    out = container.root / "srv" / "release-stranger"
    next_release(debs, f"{before['callmesh']}+stranger", out, stranger_key)

    done = container.sh("callmesh upgrade /srv/release-stranger/*.deb", timeout=300)

    assert done.returncode == 1, f"{done.stdout}\n{done.stderr}"
    assert "signature-untrusted" in done.stderr
    assert _installed(container) == before
    assert _last_upgrade(container)["error_id"] == "signature-untrusted"


def _installed(box: Container) -> dict[str, str]:
    listed = box.sh("dpkg-query -W -f '${Package} ${Version}\\n' 'callmesh*'").stdout
    return dict(line.split() for line in listed.splitlines())


def _last_upgrade(box: Container) -> dict[str, str]:
    record = json.loads(box.sh("cat /var/lib/callmesh/upgrades.json").stdout)
    last: dict[str, str] = record["attempts"][-1]
    return last


def test_an_upgrade_to_a_healthy_release_is_installed_and_recorded(
    container: Container, first_upgrade: tuple[str, subprocess.CompletedProcess[str]]
) -> None:
    version, done = first_upgrade
    reported = container.sh("callmesh --version").stdout.strip()
    owner = _stat(container, "/var/lib/callmesh/upgrades.json", "/var/lib/callmesh-releases")

    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{container.diagnose()}"
    assert set(_installed(container).values()) == {version}
    assert reported == f"callmesh {version}"
    assert _healthz(container, 8080).startswith("200 ")
    assert _last_upgrade(container)["result"] == "upgraded"
    assert owner == [
        "callmesh:callmesh 640 /var/lib/callmesh/upgrades.json",
        "root:root 700 /var/lib/callmesh-releases",
    ]


def test_an_upgrade_that_fails_its_health_check_is_rolled_back(
    container: Container,
    first_upgrade: tuple[str, subprocess.CompletedProcess[str]],
    next_releases: dict[str, str],
    timings: dict[str, float],
) -> None:
    good, _ = first_upgrade
    broken, where = list(next_releases.items())[1]
    began = time.monotonic()
    done = container.sh(f"callmesh upgrade {where}/*.deb", timeout=900)
    timings["upgrade N+1 to broken N+2 and roll back"] = time.monotonic() - began
    journal = container.sh("journalctl -b --no-pager -t callmesh-upgrade").stdout
    last = _last_upgrade(container)

    assert done.returncode == 1, f"{done.stdout}\n{done.stderr}"
    assert f"health-check-failed: callmesh {broken} failed its health check" in done.stderr
    assert "next: " in done.stderr
    assert set(_installed(container).values()) == {good}
    assert _healthz(container, 8080).startswith("200 ")
    assert f"rolling back to {good}" in journal
    assert (last["from_version"], last["to_version"], last["result"]) == (
        good,
        broken,
        "rolled-back",
    )
