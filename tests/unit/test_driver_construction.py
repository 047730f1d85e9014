"""Drivers are built only at the composition roots and their builders (docs/architecture.md).

A feature or component receives its drivers; it never constructs one. The scan reads the
source of ``appliance/`` and ``aggregator/`` for calls of a driver class; ``drivers/``
itself is not scanned (a driver builds its own parts, e.g. rtpengine's ng client).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Device and daemon drivers: every class named ``...Driver`` in drivers/ plus these.
NAMED_DRIVERS = {
    "RouteServer",
    "EvapiClient",
    "NgClient",
    "Daemon",
    "MediaPool",
    "MediaWorker",
}

# Who may build which driver, and why.
ALLOWED = {
    # The composition roots.
    ("appliance/service.py", "ModemDriver"),
    ("appliance/service.py", "NetlinkDriver"),
    # The PBX's builder, called by the appliance's root (and the PBX test runner).
    ("appliance/pbx/assembly.py", "RouteServer"),
    ("appliance/pbx/assembly.py", "RtpengineDriver"),
    ("appliance/pbx/assembly.py", "KamailioDriver"),
    ("appliance/pbx/assembly.py", "EvapiClient"),
    ("appliance/pbx/assembly.py", "MediaPool"),
    # The pool is the media workers' driver: it supervises one process per config.
    ("appliance/pbx/media.py", "MediaWorker"),
    # The doctor commands are roots of their own (a technician's one-off checks).
    ("appliance/doctor.py", "NetlinkDriver"),
    ("appliance/doctor_live.py", "NgClient"),
    # So is provision: it sets the box up before the appliance runs.
    ("appliance/cli/provision_cmd.py", "NetlinkDriver"),
}


def driver_classes() -> set[str]:
    """The named drivers and every ``...Driver`` class defined under drivers/."""
    found = set(NAMED_DRIVERS)
    for path in (ROOT / "drivers").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Driver"):
                found.add(node.name)
    return found


def constructions(package: str, classes: set[str]) -> set[tuple[str, str]]:
    """(module path, class) for every call of one of ``classes`` in ``package``."""
    found = set()
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name in classes:
                found.add((path.relative_to(ROOT).as_posix(), name))
    return found


def test_only_the_roots_and_their_builders_construct_drivers() -> None:
    classes = driver_classes()
    built = constructions("appliance", classes) | constructions("aggregator", classes)
    assert built - ALLOWED == set(), "build drivers in appliance/service.py or its builders"


def test_the_scan_sees_the_pbx_builder_construct_its_drivers() -> None:
    built = constructions("appliance", driver_classes())
    assert {c for m, c in built if m == "appliance/pbx/assembly.py"} == {
        "RouteServer",
        "RtpengineDriver",
        "KamailioDriver",
        "EvapiClient",
        "MediaPool",
    }
