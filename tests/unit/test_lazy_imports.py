"""What a process loads: modules a configuration does not use stay out of memory.

Each check imports in a fresh interpreter, since this test process has loaded most of
the code already.
"""

from __future__ import annotations

import subprocess
import sys


def loaded_after(code: str) -> set[str]:
    """The module names a fresh interpreter holds after running ``code``."""
    script = f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    return set(out.stdout.split())


def under(modules: set[str], *packages: str) -> set[str]:
    """The modules that are one of ``packages`` or inside one of them."""
    return {m for m in modules if any(m == p or m.startswith(f"{p}.") for p in packages)}


def test_the_recording_conversion_worker_loads_only_the_decoder() -> None:
    loaded = loaded_after("import appliance.pbx.conversion")
    assert "drivers.sip.recording" in loaded
    heavy = ("scapy", "pydantic", "appliance.settings", "appliance.store", "appliance.sync",
             "appliance.pbx.calls", "appliance.pbx.recordings")  # fmt: skip
    assert not under(loaded, *heavy)
