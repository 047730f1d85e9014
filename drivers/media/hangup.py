"""Ending a leg the worker placed or answered, whatever state its call is in."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pjsua2 as pj

if TYPE_CHECKING:
    from drivers.media.worker import Leg

log = logging.getLogger(__name__)


def hang_up(leg: Leg | None) -> None:
    """Hang up ``leg`` (None: nothing to do); a call that already ended is only logged."""
    if leg is None:
        return
    try:
        leg.call.hangup(pj.CallOpParam())
    except pj.Error as err:
        log.warning("hang-up of a %s leg failed (it may have ended): %s", leg.service, err.info())
