"""What a media worker's code costs before it serves anything: a fresh interpreter imports
``drivers.media.worker`` (then ``drivers.media.gsm``, which a GSM worker loads on its first
call) and reports its anonymous PSS (``Pss_Anon`` of ``/proc/self/smaps_rollup``) and how
many modules it holds, for each tree given, alternating trees round by round.

Three ways to load: ``source`` compiles every project module (``PYTHONDONTWRITEBYTECODE=1``,
no cache), ``trimmed`` is the same after ``malloc_trim(0)`` (heap the compiler freed is
given back, as a running worker reuses it), ``cached`` loads bytecode compiled beforehand
into a private cache. Trees are checkouts or ``git archive`` unpacks of other commits,
each run with this interpreter and ``PYTHONPATH`` at the tree:

    .venv/bin/python bench/bench_media_import.py --tree . --tree /tmp/d34fe1b --rounds 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import harness

MODULES = ("drivers.media.worker", "drivers.media.gsm")
MODES = ("source", "trimmed", "cached")
# Run in the fresh interpreter: import each module given, print "<module> <kB> <modules>".
PROBE = """
import ctypes, importlib, sys
def anon():
    with open("/proc/self/smaps_rollup") as rollup:
        return next(int(l.split()[1]) for l in rollup if l.startswith("Pss_Anon:"))
trim = sys.argv[1] == "trimmed"
for name in sys.argv[2:]:
    importlib.import_module(name)
    if trim:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    print(name, anon(), len(sys.modules))
"""


def probe(tree: Path, mode: str, cache: Path) -> list[tuple[str, int, int]]:
    """Per module imported in a fresh interpreter: its name, anonymous PSS kB, modules."""
    cache.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    if mode == "cached":
        del env["PYTHONDONTWRITEBYTECODE"]
        env["PYTHONPYCACHEPREFIX"] = str(cache)
    argv = [sys.executable, "-c", PROBE, mode, *MODULES]
    if mode == "cached":  # the first run fills the cache
        subprocess.run(argv, env=env, cwd=cache, check=True, capture_output=True, timeout=120)
    done = subprocess.run(argv, env=env, cwd=cache, check=True, capture_output=True,
                          text=True, timeout=harness.limit(120))  # fmt: skip
    rows = [line.split() for line in done.stdout.splitlines()]
    return [(name, int(kb), int(modules)) for name, kb, modules in rows]


def body(args: argparse.Namespace) -> None:
    trees = [Path(t).resolve() for t in args.tree or ["."]]
    print("| round | tree | " + " | ".join(f"{m}: worker / + GSM MiB (modules)" for m in MODES)
          + " |")  # fmt: skip
    print("|---|---|" + "---|" * len(MODES))
    with tempfile.TemporaryDirectory(prefix="bench-media-import-") as work:
        for round_ in range(1, args.rounds + 1):
            for index, tree in enumerate(trees):
                cells = []
                for mode in MODES:
                    rows = probe(tree, mode, Path(work) / str(index))
                    mib = " / ".join(f"{kb / 1024:.2f}" for _, kb, _ in rows)
                    cells.append(f"{mib} ({' / '.join(str(m) for _, _, m in rows)})")
                print(f"| {round_} | {tree} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    parser = harness.parser(__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", help="a source tree (default: this one)")
    parser.add_argument("--rounds", type=int, default=2)
    harness.run(body, parser.parse_args())


if __name__ == "__main__":
    main()
