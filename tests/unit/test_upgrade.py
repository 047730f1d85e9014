"""callmesh upgrade: release checks, keeping the installed release, health and rollback."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.upgrade import HealthError, ReleaseError, UpgradeLog, UpgradeStatus
from appliance.upgrade.health import HealthCheck, wait_healthy
from appliance.upgrade.record import KEEP, UpgradeAttempt
from appliance.upgrade.release import Checksums
from appliance.upgrade.service import Upgrader, UpgradeRequest
from drivers.debpkg import UnitState
from drivers.debpkg.fake import FakeDebianSystem, build_deb
from tests.release_key import ReleaseKey

ROLES = ("callmesh", "callmesh-appliance")
CHECK = HealthCheck("http://127.0.0.1:8080/healthz", ("callmesh", "doctor"), timeout_s=5)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Releases:
    """Releases signed by the session's release key, upgraded to with it trusted."""

    folder: Path
    signer: ReleaseKey
    trusted: Path

    def release(self, version: str, packages: tuple[str, ...] = ROLES) -> list[Path]:
        """The packages of ``version`` with a signed SHA256SUMS beside them."""
        out = self.folder / version
        out.mkdir()
        debs = [build_deb(out, package, version) for package in packages]
        sums = [f"{hashlib.sha256(d.read_bytes()).hexdigest()}  {d.name}" for d in debs]
        (out / "SHA256SUMS").write_text("\n".join(sums) + "\n")
        self.signer.sign(out / "SHA256SUMS")
        return debs

    def upgrade(
        self, system: FakeDebianSystem, debs: list[Path], sha256: Path | None = None
    ) -> UpgradeAttempt:
        sums = Checksums(sha256, self.trusted)
        request = UpgradeRequest(tuple(debs), sums, self.folder / "releases", CHECK)
        clock = Clock()
        log = UpgradeLog(self.folder)
        upgrader = Upgrader(system, log, lambda _line: None, (clock, clock.sleep))
        return upgrader.run(request)


@pytest.fixture
def releases(tmp_path: Path, release_signer: ReleaseKey, trusted_keys: Path) -> Releases:
    return Releases(tmp_path, release_signer, trusted_keys)


def installed_n() -> FakeDebianSystem:
    return FakeDebianSystem({"callmesh": "1.0", "callmesh-appliance": "1.0"}, broken=["3.0"])


def test_a_healthy_release_is_installed_and_both_releases_are_kept(
    tmp_path: Path, releases: Releases
) -> None:
    system = installed_n()

    attempt = releases.upgrade(system, releases.release("2.0"))

    assert (attempt.from_version, attempt.to_version, attempt.result) == ("1.0", "2.0", "upgraded")
    assert system.installs == [["callmesh=2.0", "callmesh-appliance=2.0"]]
    assert sorted(p.name for p in (tmp_path / "releases/1.0").glob("*.deb")) == [
        "callmesh-appliance_1.0_all.deb",
        "callmesh_1.0_all.deb",
    ]
    assert len(list((tmp_path / "releases/2.0").glob("*.deb"))) == 2
    assert UpgradeLog(tmp_path).attempts() == [attempt]


def test_a_release_that_fails_its_health_check_is_rolled_back(
    tmp_path: Path, releases: Releases
) -> None:
    system = installed_n()
    releases.upgrade(system, releases.release("2.0"))

    with pytest.raises(HealthError) as failed:
        releases.upgrade(system, releases.release("3.0"))

    assert failed.value.error_id == "health-check-failed"
    assert "rolled back to 2.0" in str(failed.value)
    assert system.installs[1:] == [
        ["callmesh=3.0", "callmesh-appliance=3.0"],
        ["callmesh=2.0", "callmesh-appliance=2.0"],
    ]
    assert system.versions["callmesh"] == "2.0"
    last = UpgradeLog(tmp_path).last()
    assert last is not None
    assert (last.from_version, last.to_version, last.result) == ("2.0", "3.0", "rolled-back")
    assert "failed its health check" in system.journal_lines[-2]
    assert sorted(p.name for p in (tmp_path / "releases").iterdir()) == ["1.0", "2.0"]


def test_a_rollback_that_is_not_healthy_either_says_so(tmp_path: Path, releases: Releases) -> None:
    system = FakeDebianSystem({"callmesh": "1.0", "callmesh-appliance": "1.0"}, ["1.0", "3.0"])

    with pytest.raises(HealthError) as failed:
        releases.upgrade(system, releases.release("3.0"))

    assert failed.value.error_id == "rollback-failed"
    assert "journalctl" in failed.value.next_step
    last = UpgradeLog(tmp_path).last()
    assert last is not None
    assert last.result == "rollback-failed"


def test_a_package_with_another_checksum_is_refused_before_anything_changes(
    tmp_path: Path, releases: Releases
) -> None:
    system = installed_n()
    debs = releases.release("2.0")
    sums = debs[0].with_name("SHA256SUMS")
    sums.write_text(sums.read_text().replace(sums.read_text()[:8], "00000000", 1))
    releases.signer.sign(sums)

    with pytest.raises(ReleaseError) as refused:
        releases.upgrade(system, debs)

    assert refused.value.error_id == "checksum-mismatch"
    assert system.installs == []
    last = UpgradeLog(tmp_path).last()
    assert last is not None
    assert (last.result, last.error_id) == ("refused", "checksum-mismatch")


@pytest.mark.parametrize(
    ("versions", "packages", "error_id"),
    [
        (("1.0", "1.0"), ROLES, "same-version"),
        (("2.0", "2.0"), ("callmesh",), "release-mismatch"),
        (("2.0", "2.0"), (*ROLES, "callmesh-aggregator"), "release-mismatch"),
    ],
)
def test_a_release_must_be_another_version_of_exactly_the_installed_packages(
    tmp_path: Path,
    versions: tuple[str, str],
    packages: tuple[str, ...],
    error_id: str,
    releases: Releases,
) -> None:
    system = installed_n()
    debs = releases.release(versions[0], packages)

    with pytest.raises(ReleaseError) as refused:
        releases.upgrade(system, debs)

    assert refused.value.error_id == error_id


def test_other_packages_and_missing_checksums_are_refused(
    tmp_path: Path, releases: Releases
) -> None:
    system = installed_n()
    foreign = build_deb(tmp_path, "kamailio", "9.9")
    (tmp_path / "kamailio_9.9_all.deb.sha256").write_text(
        hashlib.sha256(foreign.read_bytes()).hexdigest() + "\n"
    )
    unsigned = build_deb(tmp_path, "callmesh", "2.0")

    with pytest.raises(ReleaseError) as other:
        releases.upgrade(system, [foreign])
    with pytest.raises(ReleaseError) as missing:
        releases.upgrade(system, [unsigned])

    assert other.value.error_id == "not-callmesh-package"
    assert missing.value.error_id == "checksum-missing"


def _tampered(sums: Path, _stranger: ReleaseKey) -> None:
    sums.write_text(sums.read_text() + f"{'0' * 64}  extra.deb\n")


def _signed_by_a_stranger(sums: Path, stranger: ReleaseKey) -> None:
    stranger.sign(sums)


def _unsigned(sums: Path, _stranger: ReleaseKey) -> None:
    sums.with_name("SHA256SUMS.asc").unlink()


@pytest.mark.parametrize(
    ("spoil", "error_id"),
    [
        (_tampered, "signature-bad"),
        (_signed_by_a_stranger, "signature-untrusted"),
        (_unsigned, "signature-missing"),
    ],
)
def test_checksums_without_a_good_signature_by_a_trusted_key_are_refused(
    tmp_path: Path,
    releases: Releases,
    stranger_key: ReleaseKey,
    spoil: Callable[[Path, ReleaseKey], None],
    error_id: str,
) -> None:
    system = installed_n()
    debs = releases.release("2.0")
    spoil(debs[0].with_name("SHA256SUMS"), stranger_key)

    with pytest.raises(ReleaseError) as refused:
        releases.upgrade(system, debs)

    assert refused.value.error_id == error_id
    assert system.installs == []
    assert not (tmp_path / "releases" / "1.0").exists()


def test_without_a_package_to_roll_back_to_nothing_is_installed(
    tmp_path: Path, releases: Releases
) -> None:
    system = installed_n()
    system.repackable = False

    with pytest.raises(ReleaseError) as refused:
        releases.upgrade(system, releases.release("2.0"))

    assert refused.value.error_id == "no-rollback-package"
    assert "dpkg-repack" in refused.value.next_step
    assert system.installs == []


def test_a_sha256_file_named_on_the_command_line_is_used(
    tmp_path: Path, releases: Releases
) -> None:
    system = installed_n()
    debs = releases.release("2.0")
    named = tmp_path / "published.sha256"
    debs[0].with_name("SHA256SUMS").rename(named)
    debs[0].with_name("SHA256SUMS.asc").rename(named.with_name("published.sha256.asc"))

    attempt = releases.upgrade(system, debs, sha256=named)

    assert attempt.result == "upgraded"


def test_the_health_wait_ends_at_the_timeout_when_the_unit_never_becomes_active() -> None:
    system = installed_n()
    system.running = False
    clock = Clock()
    before = {"callmesh-appliance.service": UnitState("active", "running", 0, 1)}

    problem = wait_healthy(system, before, CHECK, clock, clock.sleep)

    assert problem == "callmesh-appliance.service is inactive/dead"
    assert clock.now == pytest.approx(CHECK.timeout_s)


def test_a_unit_waiting_to_restart_ends_the_health_wait_at_once(
    tmp_path: Path, releases: Releases
) -> None:
    system = installed_n()
    system.install(releases.release("3.0"), timeout=60)
    clock = Clock()
    before = {"callmesh-appliance.service": UnitState("active", "running", 0, 1)}

    problem = wait_healthy(system, before, CHECK, clock, clock.sleep)

    assert problem is not None
    assert "auto-restart" in problem
    assert clock.now == 0


def test_the_upgrade_log_keeps_the_last_attempts_and_drops_damaged_ones(tmp_path: Path) -> None:
    log = UpgradeLog(tmp_path)
    attempt = UpgradeAttempt("1", "2", "upgraded", "", "", "t0", "t1")
    for _ in range(KEEP + 3):
        log.append(attempt)
    kept = json.loads(log.path.read_text())
    kept["attempts"].append({"from_version": 3})
    log.path.write_text(json.dumps(kept))

    assert log.attempts() == [attempt] * KEEP
    log.path.write_text("{not json")
    assert log.attempts() == []


def test_the_status_part_follows_the_upgrade_log(tmp_path: Path) -> None:
    status = UpgradeStatus(tmp_path)
    assert status() == {}

    UpgradeLog(tmp_path).append(UpgradeAttempt("1", "2", "rolled-back", "x", "", "t0", "t1"))

    assert status()["upgrade"]["result"] == "rolled-back"


class DiesAfterStart(FakeDebianSystem):
    """A release whose appliance starts, answers /healthz, then crashes."""

    def __init__(self) -> None:
        super().__init__({"callmesh": "3.0", "callmesh-appliance": "3.0"})
        self.looks = 0

    def unit_state(self, unit: str) -> UnitState:
        self.looks += 1
        if self.looks > 1:
            return UnitState("activating", "auto-restart", 1, 0)
        return super().unit_state(unit)


def test_a_release_that_dies_soon_after_it_started_fails_its_health_check() -> None:
    system = DiesAfterStart()
    clock = Clock()
    before = {"callmesh-appliance.service": UnitState("active", "running", 0, 1)}

    problem = wait_healthy(system, before, CHECK, clock, clock.sleep)

    assert problem is not None
    assert problem.startswith("healthy at first, then callmesh-appliance.service failed")


def test_without_a_running_appliance_the_upgrade_does_not_wait_for_its_healthz(
    tmp_path: Path, releases: Releases
) -> None:
    system = installed_n()
    system.running = False

    attempt = releases.upgrade(system, releases.release("2.0"))

    assert attempt.result == "upgraded"


def test_an_oversized_upgrade_log_is_not_read(tmp_path: Path) -> None:
    log = UpgradeLog(tmp_path)
    log.path.write_text('{"attempts": [' + " " * (1024 * 1024) + "]}")

    assert log.attempts() == []
