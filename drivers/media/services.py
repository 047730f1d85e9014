"""The names a media worker's legs are served under, and how a GSM call is recognised.

Kept apart from the handlers (``drivers.media.gsm``, ``queues``, ``callbacks``, ``anchor``,
``supervise``) so the worker can route a call or an event by these names without importing
a handler it may never need.
"""

from __future__ import annotations

import re

# A call out through a GSM channel: ``<number>@<host>;...;gsm=<channel>`` (drivers.media.gsm).
GSM_URI = re.compile(r"^INVITE sip:([^@;>\s]+)@[^;\s>]+;(?:[^\s>]*;)?gsm=([a-z0-9][a-z0-9-]{0,31})")
GSM = "gsm"
# The agent rung for a queued caller (drivers.media.queues).
AGENT = "queue-agent"
# A callback's two legs: the agent first, then the caller (drivers.media.callbacks).
AGENT_LEG = "callback-agent"
CALLER_LEG = "callback-caller"
# A supervisor's leg (drivers.media.supervise) and an anchored call's (drivers.media.anchor).
SUPERVISOR = "supervise"
ANCHOR = "anchor"
