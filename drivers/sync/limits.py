"""The ranges a sync record's values must fall in; both ends check against these."""

from __future__ import annotations

# Times in records are epoch seconds; 2000-01-01 .. 2100-01-01 catches milliseconds sent
# by mistake (a millisecond time now is in the year 57,000).
TIME_MIN_S = 946_684_800.0
TIME_MAX_S = 4_102_444_800.0
# No call lasts a week; a longer duration is a unit or arithmetic error.
DURATION_MAX_S = 7 * 24 * 3600.0
ID_MAX = 64
SLOT_MAX = 8
SMS_PARTS_MAX = 255
VARIABLES_MAX = 64
# A routing table is a flat map; keys are short (``rule:<id>``), and a table past a
# million entries is a bug at HQ, not a company.
ROUTING_KEY_MAX = 256
ROUTING_ENTRIES_MAX = 1_000_000
# What a site answers to a command is shown to operators; HQ keeps this much of it.
COMMAND_DETAIL_MAX = 512

DISPOSITIONS = frozenset(
    {"answered", "busy", "no-answer", "failed", "cancelled", "interrupted", "refused"}
)
HANGUP_SIDES = frozenset({"caller", "callee", "system", ""})
SMS_DIRECTIONS = frozenset({"in", "out"})
SMS_STATUSES = frozenset({"received", "sent", "failed", "queued", "sending", "unknown"})
SIM_STATUSES = frozenset(
    {"active", "busy", "stopped", "standby", "disabled", "retired", "unknown", "absent"}
)
