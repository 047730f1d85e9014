"""Who may use which route of the appliance's local API.

Three roles, each admitting the one below: ``viewer`` reads (calls, CDRs, recordings,
trunks, SMS, the DNC list) and runs the pre-dial compliance check; ``operator`` also
acts on calls (click-to-dial, hang-up, recording, conferences), sends SMS and USSD and
edits the site's DNC list; ``admin`` may do everything. The matrix is in docs/pbx.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from drivers.daemon.access import Access, Refuse
from drivers.daemon.settings_base import ApiToken

LEVELS = {
    "viewer": frozenset({"viewer", "operator", "admin"}),
    "operator": frozenset({"operator", "admin"}),
    "admin": frozenset({"admin"}),
}


def local_access(tokens: Sequence[ApiToken], refuse: Refuse) -> Access[str]:
    """Access to the local API; a route's dependency yields the caller's role."""
    return Access(tokens, LEVELS, _role, refuse)


def _role(token: ApiToken) -> str:
    return token.role
