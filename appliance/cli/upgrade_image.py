"""`callmesh upgrade IMAGE.img` and `callmesh upgrade --boot-check`: the A/B image slots."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime

from appliance.cli.flash_cmd import ProgressBar
from appliance.upgrade import UpgradeAttempt, UpgradeError, UpgradeLog
from appliance.upgrade.image import SlotPaths, boot_check, give_up_trial, write_slot
from appliance.upgrade.release import Checksums
from drivers.daemon.version import __version__

BOOT_UNIT = "callmesh-appliance.service"


def upgrade_image(args: argparse.Namespace, log: UpgradeLog) -> int:
    """Write the image into the inactive slot; the next boot tries it."""
    started = _now()
    try:
        sums = Checksums(args.sha256, args.trusted_keys)
        written = write_slot(args.packages[0], sums, SlotPaths(), ProgressBar)
    except UpgradeError as err:
        log.append(
            UpgradeAttempt(__version__, "", "refused", err.error_id, str(err), started, _now())
        )
        print(f"callmesh upgrade: {err.error_id}: {err}\n  next: {err.next_step}", file=sys.stderr)
        return 1
    log.append(
        UpgradeAttempt(__version__, written.version, "slot-written", "", "", started, _now())
    )
    slot = f"slot {written.slot.upper()} ({written.entry.name})"
    print(
        f"callmesh {written.version} written to {slot}; reboot to start it. It is kept "
        "once healthy; if it is not healthy (or fails to boot 3 times), the box boots this "
        "release again."
    )
    return 0


def mark_boot(problem: str | None, log: UpgradeLog, reboot: Callable[[], object]) -> int:
    """Bless the running slot unless there is a ``problem``; record what the boot shows.

    A slot on trial that is not healthy is marked bad and the box reboots into the other
    slot, whose boot check then records the rollback.
    """
    started = _now()
    if problem is not None:
        try:
            bad = give_up_trial(SlotPaths())
        except UpgradeError:
            bad = None
        then = (
            f"marked bad ({bad.name}), rebooting into the other slot" if bad else "it stays running"
        )
        print(f"callmesh upgrade: boot-unhealthy: {problem}; {then}", file=sys.stderr)
        if bad is not None:
            reboot()
        return 1
    try:
        outcome = boot_check(SlotPaths())
    except UpgradeError as err:
        print(f"callmesh upgrade: {err.error_id}: {err}", file=sys.stderr)
        return 0
    if outcome.failed is not None:
        detail = (
            f"callmesh {outcome.failed} failed its boot health check or its boot tries; "
            f"slot {outcome.running} booted"
        )
        attempt = UpgradeAttempt(
            __version__, outcome.failed, "rolled-back", "boot-failed", detail, started, _now()
        )
        log.append(attempt)
    if outcome.blessed is not None:
        log.append(UpgradeAttempt("", __version__, "upgraded", "", "", started, _now()))
    return 0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
