"""Later releases of the built packages, for upgrade tests: same files, another version.

``image/build-deb`` takes its version from ``drivers/daemon/version.py``; building the
virtualenv again for every version would cost minutes, so ``next_release`` unpacks the
session's packages, sets the new version in their control files, their exact-version
dependencies and the venv's ``version.py``, and packs them again (gzip, fast). A
``broken`` release also gets an appliance service that raises at start, as a release
with a bad change would.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tests.release_key import ReleaseKey

BROKEN = 'raise RuntimeError("this release is broken on purpose (upgrade test)")\n'


def _sh(argv: Sequence[str], timeout: float = 300) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{argv} failed:\n{done.stderr[-2000:]}"
    return done.stdout


def next_release(
    debs: Sequence[Path], version: str, out: Path, signer: ReleaseKey, broken: bool = False
) -> list[Path]:
    """``debs`` repacked at ``version`` in ``out``, with a SHA256SUMS signed by ``signer``."""
    out.mkdir(parents=True)
    made = [_repack(deb, version, out, broken) for deb in debs]
    sums = [f"{hashlib.sha256(deb.read_bytes()).hexdigest()}  {deb.name}" for deb in made]
    (out / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    signer.sign(out / "SHA256SUMS")
    return made


def _repack(deb: Path, version: str, out: Path, broken: bool) -> Path:
    tree = out / f".{deb.name}"
    _sh(["dpkg-deb", "--raw-extract", str(deb), str(tree)])
    control = tree / "DEBIAN" / "control"
    old = re.search(r"^Version: (.+)$", control.read_text(), re.MULTILINE)
    assert old is not None
    text = control.read_text().replace(f"(= {old.group(1)})", f"(= {version})")
    control.write_text(re.sub(r"^Version: .+$", f"Version: {version}", text, flags=re.MULTILINE))
    site = next(tree.glob("opt/callmesh/venv/lib/python3*/site-packages"), None)
    if site is not None:
        _edit(site / "drivers/daemon/version.py", f'__version__ = "{version}"\n', tree)
        if broken:
            service = site / "appliance/service.py"
            _edit(service, BROKEN + service.read_text(), tree)
    package, _, rest = deb.name.partition("_")
    built = out / f"{package}_{version}_{rest.rpartition('_')[2]}"
    _sh(["dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "--build", str(tree), str(built)])
    _sh(["rm", "-rf", str(tree)])
    return built


def _edit(path: Path, text: str, tree: Path) -> None:
    """New text for a venv file: its byte-code (never checked against it) goes, md5sums follow."""
    path.write_text(text)
    gone = {str(path.relative_to(tree))}
    for compiled in path.parent.glob(f"__pycache__/{path.stem}.*.pyc"):
        gone.add(str(compiled.relative_to(tree)))
        compiled.unlink()
    relative = str(path.relative_to(tree))
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    sums = tree / "DEBIAN" / "md5sums"
    kept = [ln for ln in sums.read_text().splitlines() if ln.split("  ", 1)[-1] not in gone]
    sums.write_text("\n".join([*kept, f"{md5}  {relative}"]) + "\n")
