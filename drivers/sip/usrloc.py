"""Who is registered: the AoRs in Kamailio's ``ul.dump`` answer (usrloc, ``use_domain`` 0).

Kamailio answers ``ul.dump brief`` with nested objects (``Domains`` → ``Domain`` →
``AoRs`` → ``Info`` → ``AoR``); the shape is read loosely, every ``AoR`` string found at
any depth counts, so a layout change between Kamailio versions cannot raise here.
"""

from __future__ import annotations

from typing import Any


def registered_users(result: Any) -> set[str]:
    """Every AoR's user part in an ``ul.dump`` result; nothing else in it matters."""
    found: set[str] = set()
    stack = [result]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            aor = item.get("AoR")
            if isinstance(aor, str) and aor:
                found.add(aor.partition("@")[0])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found
