"""`callmesh keys ...`: CurveZMQ keypairs for the sync link."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `callmesh keys`."""
    parser = sub.add_parser(
        "keys",
        help="create and show CurveZMQ keys for the appliance-aggregator link",
        description="Manage the CurveZMQ keypairs that secure the sync link. Each site has "
        "its own keypair; the aggregator accepts a site only when its public key is listed "
        "under ingest.sites with that site's id, or was enrolled with a one-time code "
        "(`callmesh enrol`, which makes the keypair itself).",
    )
    commands = parser.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    gen = commands.add_parser(
        "gen",
        help="create a keypair: NAME.key (public) and NAME.key_secret (mode 0600)",
        description="Create a CurveZMQ keypair in DIR and print the public key, ready to "
        "paste into the aggregator's ingest.sites (for a site) or an appliance's "
        "sync.server_public_key (for the aggregator). Refuses to overwrite existing keys.",
    )
    gen.add_argument("name", help="site id (or 'aggregator') to name the files after")
    gen.add_argument("--dir", type=Path, default=Path("."), help="where to write (default .)")
    gen.set_defaults(func=_gen)
    show = commands.add_parser(
        "show",
        help="print the public key in a .key or .key_secret file",
        description="Print the z85 public key held in a key file.",
    )
    show.add_argument("file", type=Path)
    show.set_defaults(func=_show)


def _gen(args: argparse.Namespace) -> int:
    from drivers.sync import keys

    for suffix in (".key", ".key_secret"):
        if (args.dir / f"{args.name}{suffix}").exists():
            print(
                f"callmesh keys: {args.dir / (args.name + suffix)} exists; not overwriting",
                file=sys.stderr,
            )
            return 1
    public, secret = keys.generate(args.dir, args.name)
    print(f"public key: {keys.load_public(public).decode()}")
    print(f"written: {public} and {secret}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from drivers.sync import keys

    try:
        print(keys.load_public(args.file).decode())
    except keys.KeyFileError as err:
        print(f"callmesh keys: {err}", file=sys.stderr)
        return 1
    return 0
