"""CDR documents built from Kamailio's call events (pure; no storage, no I/O).

Events are the records of ``drivers/sip/events.py``: ``Invite`` (a call was relayed),
``Answer`` (dialog confirmed), ``End`` (BYE; ``reason`` says which side), ``Failed``
(negative final reply; ``reason`` busy/no-answer/cancelled/failed) and ``Rejected``
(refused before relaying: unknown extension, callee unavailable, no media relay; a
compliance refusal carries ``refusal`` and becomes disposition ``refused``, its
``hangup_cause.reason`` the rule).
A finished call is a ``Cdr`` (drivers/sync/records.py), the record HQ parses; its
document schema is in docs/pbx.md.
"""

from __future__ import annotations

import math
import os
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from drivers.sip.events import CallOffer, End, Failed, Rejected
from drivers.sync.limits import DISPOSITIONS
from drivers.sync.records import Cdr, HangupCause, Party

_NAMESPACE = uuid.UUID("6f1d2d8e-5c1b-4d43-9a63-2f8a5a0c7e11")


def time_ordered_id(now_ms: int | None = None, entropy: bytes | None = None) -> str:
    """A UUIDv7 (RFC 9562 §5.7): unix milliseconds first, so ids sort by creation time.

    HQ stores CDRs under a unique (site, id) index; ids that grow with time land at the
    end of that index instead of at random pages, which halves the cost of an insert.
    Ids taken from the clock also grow within one millisecond (``rand_a`` counts on,
    RFC 9562 §6.2 method 1), so a queue kept in id order, like the SMS queue, is first in,
    first out.
    """
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    bits = int.from_bytes(entropy if entropy is not None else os.urandom(10), "big")
    rand_a, rand_b = (bits >> 62) & 0xFFF, bits & ((1 << 62) - 1)
    if now_ms is None and entropy is None:
        ms, rand_a = _after_the_last(ms, rand_a)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return str(uuid.UUID(int=value))


_last_id = [0, 0]  # the (ms, rand_a) of the newest id taken from the clock
_last_id_lock = threading.Lock()


def _after_the_last(ms: int, rand_a: int) -> tuple[int, int]:
    """``(ms, rand_a)``, moved past the newest id from the clock when it would not sort after it."""
    with _last_id_lock:
        last_ms, last_a = _last_id
        if (ms, rand_a) <= (last_ms, last_a):
            ms, rand_a = (last_ms, last_a + 1) if last_a < 0xFFF else (last_ms + 1, 0)
        _last_id[:] = [ms, rand_a]
        return ms, rand_a


def recording_id(site_id: str, cdr_id: str) -> str:
    """The recording id of a call, from its CDR id: CDR and recording agree without talking,
    and a phone that reuses a Call-ID still gets a new recording (and WAV) per call."""
    return str(uuid.uuid5(_NAMESPACE, f"recording:{site_id}:{cdr_id}"))


def conversation_id(site_id: str, call_id: str) -> str:
    """A new conversation's id, from the leg where it starts; later legs carry it along."""
    return str(uuid.uuid5(_NAMESPACE, f"conversation:{site_id}:{call_id}"))


class CdrBuilder:
    """Turns events into open-call records and finished CDR documents."""

    def __init__(self, site_id: str, extensions: Mapping[str, str], record: bool = True) -> None:
        self.site_id = site_id
        self._names = dict(extensions)
        self._record = record

    def party(self, number: str, name: str = "") -> Party:
        """A party, marked as a local extension when it is one."""
        local = number in self._names
        return Party(number, number if local else None, name or self._names.get(number, ""))

    def open_call(self, event: CallOffer, conversation: str | None = None) -> dict[str, Any]:
        """The open-call record for an ``invite`` (or ``rejected``) event.

        ``conversation``: the one it joins; a call from another site brings its own.
        """
        call_id = event.call_id
        recording = event.recording or ("always" if self._record else "never")
        caller = self.party(event.from_user, event.from_name.strip())
        peer_site = event.peer_site or None
        if peer_site and event.caller_ext:
            # From another site: the number is as presented, the extension is theirs.
            caller = Party(caller.number, event.caller_ext, caller.name)
        return {
            "call_id": call_id,
            "cdr_id": time_ordered_id(),
            "peer_site": peer_site,
            "caller": caller.to_doc(),
            "callee": self.party(_dialled(event)).to_doc(),
            "caller_tag": event.from_tag,
            "route": event.route or "extension",
            "trunk": event.trunk or None,
            "inbound": event.from_trunk,
            "start": event.ts,
            "answer": None,
            "media_interrupted": None,
            "conversation_id": _uuid(conversation or (peer_site and event.conversation))
            or conversation_id(self.site_id, call_id),
            "recording": recording,
            "record": self._record and recording == "always",
            "media_peer": event.media_peer or None,
            "to_tag": None,
            "gsm": dict(event.gsm_info) if event.gsm_info else None,
        }

    def finish(
        self,
        call: Mapping[str, Any],
        end: float,
        disposition: str,
        cause: int,
        reason: str,
        side: str,
    ) -> dict[str, Any]:
        """The CDR document of a finished call."""
        answer = call.get("answer")
        if call.get("media_interrupted") and answer is not None:
            disposition, reason = "interrupted", str(call["media_interrupted"])
        start = float(call["start"])
        recorded = bool(call.get("record", self._record)) and answer is not None
        cdr = Cdr(
            cdr_id=call["cdr_id"],
            start=start,
            disposition=disposition,
            conversation_id=call.get("conversation_id")
            or conversation_id(self.site_id, call["call_id"]),
            direction=_direction(call),
            caller=_party(call["caller"]),
            callee=_party(call["callee"]),
            trunk=call.get("trunk"),
            answer=answer,
            end=end,
            duration_s=round(max(0.0, end - start), 3),
            billable_s=math.ceil(max(0.0, end - answer)) if answer is not None else 0,
            hangup_cause=HangupCause(cause, reason),
            hangup_side=side,
            recording_id=recording_id(self.site_id, call["cdr_id"]) if recorded else None,
            site_id=self.site_id,
            peer_site=call.get("peer_site"),
            call_id=call["call_id"],
            route=call.get("route", "extension"),
            failovers=int(call.get("failovers", 0)),
            gsm=call.get("gsm"),
            variables=dict(call.get("variables") or {}),
        )
        return cdr.to_doc()

    def from_end(self, call: Mapping[str, Any], event: End) -> dict[str, Any]:
        """CDR for an ``end`` event (BYE from either side); ``replaced`` when a media worker
        took the call over (INVITE with Replaces: three-way, anchoring)."""
        side = "caller" if event.reason == "caller" else "callee"
        reason = "replaced" if call.get("replaced") else "normal-clearing"
        return self.finish(call, event.ts, "answered", 200, reason, side)

    def from_failed(self, call: Mapping[str, Any], event: Failed) -> dict[str, Any]:
        """CDR for a ``failed`` event (busy, no answer, cancelled, other failure)."""
        reason = event.reason or "failed"
        disposition = reason if reason in DISPOSITIONS else "failed"
        side = "caller" if disposition == "cancelled" else "callee"
        if disposition == "no-answer":
            side = "system"
        return self.finish(call, event.ts, disposition, event.code, reason, side)

    def from_rejected(self, event: Rejected) -> dict[str, Any]:
        """CDR for a call refused before it was relayed (``refused`` when compliance did)."""
        call = self.open_call(event)
        reason = event.reason or "failed"
        disposition = "refused" if event.refusal else "failed"
        return self.finish(call, event.ts, disposition, event.code, reason, "system")

    def interrupted(self, call: Mapping[str, Any], end: float, why: str) -> dict[str, Any]:
        """CDR for a call that was open when a component crashed."""
        return self.finish(call, end, "interrupted", 0, why, "system")


def _party(doc: Mapping[str, Any]) -> Party:
    """An open call's party as stored (a map, possibly written by an older version)."""
    return Party(str(doc.get("number") or ""), doc.get("extension"), str(doc.get("name") or ""))


def _direction(call: Mapping[str, Any]) -> str:
    if call.get("inbound"):
        return "inbound"
    return "outbound" if call.get("trunk") else "internal"


def _dialled(event: CallOffer) -> str:
    return event.dialled or event.request_user or event.to_user


def _uuid(value: Any) -> str | None:
    try:
        return str(uuid.UUID(str(value))) if value else None
    except ValueError:
        return None
