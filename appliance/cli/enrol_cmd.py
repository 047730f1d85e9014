"""`callmesh enrol`: join this box to HQ with a one-time code (docs/enrolment.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
DEFAULT_CONFIG = Path("/etc/callmesh/appliance.yaml")
USAGE_ERRORS = frozenset({"code-malformed", "hq-url", "hq-url-insecure", "config-unreadable"})


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `callmesh enrol`."""
    parser = sub.add_parser(
        "enrol",
        help="enrol this box with HQ using a one-time code",
        description="Create this site's CurveZMQ keypair (once; the secret key never leaves "
        "the box), register its public key with HQ using a one-time code from HQ's admin, and "
        "write HQ's key and ingest endpoint to conf.d/50-enrolment.yaml. Safe to run again. "
        "Restart the appliance afterwards to start syncing.",
    )
    parser.add_argument("--hq", required=True, metavar="URL", help="HQ's API, https://HOST:PORT")
    parser.add_argument("--code", required=True, help="the one-time code HQ's admin created")
    parser.add_argument(
        "--config",
        "-c",
        type=Path,
        default=DEFAULT_CONFIG,
        metavar="FILE",
        help=f"appliance config file (default {DEFAULT_CONFIG})",
    )
    parser.add_argument(
        "--conf-d", type=Path, metavar="DIR", help="drop-in folder (default: conf.d beside FILE)"
    )
    parser.add_argument(
        "--retry-for",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="keep retrying while HQ is unreachable (default 60)",
    )
    parser.add_argument(
        "--allow-http",
        action="store_true",
        help="allow plain http to a non-loopback HQ (the code crosses the network readable)",
    )
    parser.add_argument(
        "--ca-file", type=Path, metavar="PEM", help="CA bundle to verify HQ's certificate"
    )
    parser.set_defaults(func=_enrol)


def _enrol(args: argparse.Namespace) -> int:
    from appliance.enrolment import client

    try:
        url = client.check_url(args.hq, args.allow_http)
        site_id = client.site_of(args.code)
        target = client.target_of(args.config, args.conf_d)
        secret, public_key = client.site_keypair(target, site_id)
        with client.http_client(args.ca_file) as http:
            answer = client.ask_hq(
                lambda u, body: http.post(u, json=body), url, args.code, public_key, args.retry_for
            )
        enrolled = client.save(target, secret, answer)
    except client.EnrolError as err:
        print(f"callmesh enrol: {err.message} [error_id: {err.error_id}]", file=sys.stderr)
        return EXIT_USAGE if err.error_id in USAGE_ERRORS else EXIT_FAILURE
    print(f"enrolled as site {enrolled.site_id}; HQ ingest at {enrolled.endpoint}")
    print(f"written: {enrolled.drop_in} (key: {enrolled.key_file})")
    print("restart the appliance to start syncing: systemctl restart callmesh-appliance")
    return EXIT_OK
