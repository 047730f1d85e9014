"""A small company directory the routing tests start from and vary."""

from __future__ import annotations

from typing import Any

from aggregator.directory.model import Directory


def company(**changes: Any) -> dict[str, Any]:
    """Berlin, Paris and a SIM gateway in Lyon: flat plan plus site prefix 8."""
    doc: dict[str, Any] = {
        "plan": {"flat": True, "site_prefix": "8"},
        "sites": [
            {
                "id": "berlin",
                "name": "Berlin",
                "sip_address": "10.1.0.10",
                "timezone": "Europe/Berlin",
                "code": "10",
                "ranges": [{"first": "1000", "last": "1099"}],
                "extensions": ["1200"],
            },
            {
                "id": "paris",
                "name": "Paris",
                "sip_address": "10.2.0.10:5060",
                "timezone": "Europe/Paris",
                "code": "20",
                "ranges": [{"first": "2000", "last": "2099"}],
            },
            {
                "id": "lyon",
                "profile": "sim-gateway",
                "sip_address": "10.3.0.10",
                "timezone": "Europe/Paris",
                "code": "30",
            },
        ],
        "trunks": [
            {"id": "berlin-sip", "site": "berlin", "numbers": ["+49301234500", "+49301234501"]},
            {"id": "lyon-gsm", "site": "lyon", "kind": "gsm", "numbers": ["+33612345678"]},
        ],
        "rules": [
            {
                "id": "germany",
                "prefix": "0049",
                "priority": 10,
                "targets": [
                    {
                        "trunk": "berlin-sip",
                        "strip": 4,
                        "prepend": "+49",
                        "caller_id": "+49301234501",
                    }
                ],
            },
            {
                "id": "france-office-hours",
                "prefix": "0033",
                "priority": 10,
                "windows": [
                    {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00"}
                ],
                "targets": [{"trunk": "lyon-gsm", "strip": 4, "prepend": "+33"}],
            },
            {
                "id": "international",
                "prefix": "00",
                "priority": 50,
                "sites": ["berlin", "lyon"],
                "targets": [
                    {"trunk": "berlin-sip", "cost": 5, "strip": 2, "prepend": "+"},
                    {"site": "paris", "cost": 1},
                ],
            },
        ],
    }
    doc.update(changes)
    return doc


def directory(**changes: Any) -> Directory:
    """The sample as a Directory model."""
    return Directory.model_validate(company(**changes))
