"""The call service: applies Kamailio's events to open calls and writes CDRs durably.

Theory of operation: every open call lives in the StateStore (namespace ``pbx-open``)
from its ``invite`` event on, so it survives a crash of any process. When a call ends
its CDR is appended to the ``cdr`` outbox, indexed by call id (``pbx-done``) for the
recordings service and by start time (``pbx-cdr``) for search, and its open record
deleted, all in one transaction (same msgpack layout as StateStore).

Group commit: the writes of Kamailio's events (``handle``) are staged and committed
together when a short window ends (``GROUP_WINDOW_S``, or at once when
``GROUP_MAX_WRITES`` are staged): at 100 calls/s the invite, answer and CDR writes of
many calls share one fsync instead of taking three each. Until that commit the staged
open calls are read from memory; so are the committed ones (``_open``, a copy of every
open record this service wrote, kept beside LMDB): an event is applied to its call
without reading the record back from the store. Nothing that depends on durability runs before it:
``on_change`` (webhooks: call started, answered, ended), the ``cdr written`` log and the
``ended`` counters follow the commit. The other methods (API hang-up, media loss,
restart) commit what is staged, then their own writes, before they return. Events that
Kamailio sent but that were not yet committed when the process died are lost exactly
like events still in the socket: Kamailio never waits for them. If a group commit
fails, each of its writes is retried alone with the rules below.

If a CDR's commit fails, the CDR is stored in the open record (``closing``) when the
store still takes that. After a crash, open records become
``interrupted`` CDRs; a record caught in ``closing`` is re-appended only if its CDR is
not already pending in the outbox, with the same ``cdr_id`` (the aggregator stores by
site and CDR id), so no CDR is lost or doubled.

A CDR the store refuses (full map, disk error) is never dropped silently: it is logged
whole at CRITICAL with ``error_id`` ``cdr-write-failed`` (so it can be recovered from
the log) and counted in ``write_failures``; the call path carries on. A call whose
open record the store refuses is kept in memory until it ends, so its CDR is still
built (and written, or logged whole).
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import msgpack

from appliance.pbx.cdr import CdrBuilder
from appliance.store import GroupCommit, Outbox, Staged, StateStore, Store, StoreError
from drivers.sip.events import Answer, CallEvent, End, Failover, Invite, Rejected
from drivers.sync.records import iso

log = logging.getLogger(__name__)

OPEN, DONE, INDEX = "pbx-open", "pbx-done", "pbx-cdr"
DONE_KEEP_S = 24 * 3600
INDEX_KEEP_S = 90 * 24 * 3600
EXPECT_S = 120.0
GROUP_WINDOW_S = 0.02
GROUP_MAX_WRITES = 256


class CallService:
    """Open calls and CDRs; every method runs on the event loop that owns call state."""

    def __init__(self, store: Store, builder: CdrBuilder) -> None:
        self.builder = builder
        self._store = store
        self.outbox = Outbox(store, "cdr")
        self.open = StateStore(store, OPEN)
        self.done = StateStore(store, DONE)
        self.index = StateStore(store, INDEX)
        self.on_change: Callable[[str, dict[str, Any]], None] | None = None
        self.cdr_listeners: list[Callable[[dict[str, Any]], None]] = []
        self.write_failures = 0
        self._unstored: dict[str, dict[str, Any]] = {}
        self._expected: dict[str, float] = {}
        self.ended: collections.Counter[str] = collections.Counter()
        self.group = GroupCommit(store, GROUP_WINDOW_S, GROUP_MAX_WRITES)
        self._staged: dict[str, dict[str, Any] | None] = {}
        self._open: dict[str, dict[str, Any]] = {}
        self._early: dict[str, tuple[dict[str, str], float]] = {}

    def handle(self, event: CallEvent) -> dict[str, Any] | None:
        """Apply one event; returns the CDR it finished, if any.

        Its writes join the current group commit; ``on_change`` runs once they are durable
        (without a running event loop, before this returns).
        """
        if isinstance(event, Rejected):
            return self._write(None, self.builder.from_rejected(event))
        call = self._current(event.call_id)
        if isinstance(event, Invite):
            if call is None:
                call = self.builder.open_call(event, self._conversation(event))
                early, _ = self._early.pop(event.call_id, ({}, 0.0))
                if early:
                    call["variables"] = {**(call.get("variables") or {}), **early}
                if event.replaces:
                    self._takes_over(event.replaces, call)
                self._keep(event.call_id, call, "call.started")
            return None
        if call is None:
            log.warning(
                "event for an unknown call", extra={"kind": event.kind, "call_id": event.call_id}
            )
            return None
        if isinstance(event, Answer):
            call["answer"] = event.ts
            call["to_tag"] = event.to_tag or None
            call["dialog"] = [event.h_entry, event.h_id]
            self._keep(event.call_id, call, "call.answered")
            return None
        if isinstance(event, End):
            return self._write(call, self.builder.from_end(call, event))
        return self._write(call, self.builder.from_failed(call, event))

    def _takes_over(self, replaced: str, call: dict[str, Any]) -> None:
        """``call`` (its INVITE had Replaces) continues the open call ``replaced``: that
        one's CDR ends ``replaced``, this one's variables name it (``replaces``), so HQ
        counts the conversation's call once."""
        if self.update(replaced, replaced=True):
            call["variables"] = {**(call.get("variables") or {}), "replaces": replaced}

    def expect_conversation(self, conversation: str) -> None:
        """Accept ``conversation`` from the X-Callmesh-Conversation header of coming calls."""
        self._expected[conversation] = time.monotonic() + EXPECT_S

    def _conversation(self, event: Invite) -> str | None:
        """The conversation an ``invite`` joins: a placed call's, a replaced or transferred leg's.

        A header value is only taken from another site (its INVITE is signed), or when
        the appliance placed that conversation or a call in it is open, so a phone
        cannot attach its call to a stranger's.
        """
        now = time.monotonic()
        self._expected = {k: t for k, t in self._expected.items() if t > now}
        header, replaces, referrer = event.conversation, event.replaces, event.referred_by
        if not (header or replaces or referrer):
            # An ordinary call: no need to read every open call (costly with hundreds up).
            return None
        self.flush()
        open_calls = [c for _, c in self.open.items()]
        known = {c.get("conversation_id") for c in open_calls} | set(self._expected)
        if header and (header in known or event.peer_site):
            return header
        caller = event.from_user
        for call in open_calls:
            if replaces and call["call_id"] == replaces:
                return str(call["conversation_id"])
        for call in open_calls:
            parties = {call["caller"]["number"], call["callee"]["number"]}
            if referrer and {referrer, caller} <= parties:
                return str(call["conversation_id"])
        return None

    def flush(self) -> None:
        """Commit the staged writes now instead of when the group window ends."""
        self.group.flush()

    def get(self, call_id: str) -> dict[str, Any] | None:
        """The open call ``call_id``, if it is in progress."""
        self.flush()
        call = self.open.get(call_id)
        return None if call is None or "closing" in call else dict(call)

    def update(self, call_id: str, **fields: Any) -> bool:
        """Change fields of an open call (e.g. recording started on demand); False when
        the call is not open."""
        self.flush()
        call = self.open.get(call_id)
        if call is None or "closing" in call:
            return False
        call.update(fields)
        self._put_open(call_id, call)
        return True

    def add_variables(self, call_id: str, fields: dict[str, str]) -> None:
        """Merge ``fields`` into a call's variables, which its CDR carries to HQ.

        A media worker can report a call (say, a caller entering a queue) before Kamailio's
        ``invite`` event for it is read: such fields are kept for ``EXPECT_S`` and merged
        when the call opens.
        """
        self.flush()
        call = self.open.get(call_id)
        if call is not None:
            if "closing" not in call:
                call["variables"] = {**(call.get("variables") or {}), **fields}
                self._put_open(call_id, call)
            return
        now = time.monotonic()
        self._early = {k: v for k, v in self._early.items() if v[1] > now}
        known, _ = self._early.get(call_id, ({}, 0.0))
        self._early[call_id] = ({**known, **fields}, now + EXPECT_S)

    def close(
        self, call_id: str, disposition: str, reason: str, side: str = "system"
    ) -> dict[str, Any] | None:
        """End an open call the appliance hung up itself; returns its CDR once committed."""
        self.flush()
        call = self.open.get(call_id)
        if call is None or "closing" in call:
            return None
        if call.get("answer") is None and disposition == "answered":
            disposition = "cancelled"
        cdr = self._write(
            call, self.builder.finish(call, time.time(), disposition, 0, reason, side)
        )
        self.flush()
        return cdr

    def media_lost(self, peer: str, why: str) -> list[dict[str, Any]]:
        """Close the open calls that had a media worker at ``peer`` as one end."""
        self.flush()
        lost = [c for _, c in self.open.items()
                if c.get("media_peer") == peer and "closing" not in c]  # fmt: skip
        return [cdr for c in lost if (cdr := self.close(c["call_id"], "interrupted", why))]

    def failed_over(self, event: Failover) -> None:
        """Kamailio moved a call on to its next hop: the CDR names where it went."""
        call_id = event.call_id
        self.flush()
        call = self.open.get(call_id) if call_id else None
        if call is None or "closing" in call:
            return
        kind, _, rest = event.next.partition(":")
        site, _, via = rest.partition(" via ")
        call["trunk"] = via or (site if kind == "trunk" else None)
        call["peer_site"] = site if kind == "site" else None
        call["failovers"] = int(call.get("failovers", 0)) + 1
        self._put_open(call_id, call)

    def live_calls(self) -> list[dict[str, Any]]:
        """Calls in progress."""
        self.flush()
        return [call for _, call in self.open.items() if "closing" not in call]

    def mark_media_interrupted(self, why: str) -> int:
        """Flag open calls whose media relay died; they end as ``interrupted``."""
        self.flush()
        count = 0
        for call_id, call in self.open.items():
            if "closing" not in call:
                call["media_interrupted"] = why
                self._put_open(call_id, call)
                count += 1
        return count

    def interrupt_all(self, why: str) -> list[dict[str, Any]]:
        """Close every open call after a crash; returns the CDRs written (one commit)."""
        self.flush()
        written = []
        pending = self._pending_cdr_ids()
        now = time.time()
        for call_id, call in self.open.items():
            closing = call.get("closing")
            if closing is None:
                written.append(self._write(call, self.builder.interrupted(call, now, why)))
            elif closing["cdr_id"] in pending:
                self.open.delete(call_id)
                self._open.pop(call_id, None)
            else:
                written.append(self._write(call, closing))
        self.flush()
        if written:
            log.warning("closed %d interrupted calls", len(written), extra={"why": why})
        return written

    def _current(self, call_id: str) -> dict[str, Any] | None:
        """The open call as the events so far left it: staged, stored or in memory only."""
        if call_id in self._staged:
            return self._staged[call_id]
        if call_id in self._open:
            return dict(self._open[call_id])
        call: dict[str, Any] | None = self.open.get(call_id)
        return call or self._unstored.get(call_id)

    def _put_open(self, call_id: str, call: dict[str, Any]) -> None:
        """Store an open record in its own commit and keep its copy beside LMDB."""
        self.open.put(call_id, call)
        self._open[call_id] = call

    def _settle(self, call_id: str, staged: dict[str, Any] | None) -> None:
        """Forget a staged state once the store (or the in-memory fallback) holds it."""
        if call_id in self._staged and self._staged[call_id] is staged:
            del self._staged[call_id]

    def _keep(self, call_id: str, call: dict[str, Any], change: str) -> None:
        """Stage an open call's record; ``change`` is reported once it is committed."""
        self._staged[call_id] = call
        doc = dict(call)

        def write(txn: Any) -> None:
            txn.put(call_id.encode(), _pack(call), db=self._store.db(OPEN))

        def committed() -> None:
            self._settle(call_id, call)
            self._unstored.pop(call_id, None)
            self._open[call_id] = call
            self._changed(change, doc)

        def alone() -> None:
            self._settle(call_id, call)
            self._keep_alone(call_id, call)
            self._changed(change, doc)

        self.group.stage(Staged(write, committed, alone))

    def _keep_alone(self, call_id: str, call: dict[str, Any]) -> None:
        """Store an open call in its own commit; in memory only while the store refuses it."""
        try:
            self._put_open(call_id, call)
        except StoreError as err:
            if call_id not in self._unstored:
                log.error(
                    "open call kept in memory only: the store refused it",
                    extra={"error_id": "call-not-stored", "call_id": call_id, "error": str(err)},
                )
            self._unstored[call_id] = call
        else:
            self._unstored.pop(call_id, None)

    def _write(self, call: dict[str, Any] | None, cdr: dict[str, Any]) -> dict[str, Any]:
        """Stage a finished call's CDR; it is logged and reported once committed."""
        call_id = cdr["call_id"]
        self._unstored.pop(call_id, None)
        if call is not None:
            self._staged[call_id] = None
        self.group.stage(
            Staged(
                lambda txn: self._cdr_in(txn, call, cdr),
                lambda: self._cdr_finished(call, cdr, alone=False),
                lambda: self._cdr_finished(call, cdr, alone=True),
            )
        )
        return cdr

    def _cdr_finished(self, call: dict[str, Any] | None, cdr: dict[str, Any], alone: bool) -> None:
        """After the group commit: write the CDR alone if that failed, then report it."""
        if call is not None:
            self._settle(cdr["call_id"], None)
            self._unstored.pop(cdr["call_id"], None)
        try:
            if alone:
                self._store_cdr(call, cdr)
        except StoreError as err:
            self._write_failed(cdr, err)
        else:
            if call is not None:
                self._open.pop(cdr["call_id"], None)
            log.info(
                "cdr written",
                extra={"cdr_id": cdr["cdr_id"], "disposition": cdr["disposition"]},
            )
            for listener in self.cdr_listeners:
                listener(cdr)
        self.ended[cdr["disposition"]] += 1
        self._changed("call.ended", cdr)

    def _write_failed(self, cdr: dict[str, Any], err: StoreError) -> None:
        self.write_failures += 1
        log.critical(
            "CDR NOT STORED: the store refused it, so it cannot reach HQ; it is kept whole "
            "in this log line. Free space (restore the link to HQ, raise store.map_size_mb) "
            "and re-enter it from here",
            extra={
                "error_id": "cdr-write-failed",
                "cdr_id": cdr["cdr_id"],
                "error": str(err),
                "cdr": json.dumps(cdr, default=str, sort_keys=True),
            },
        )

    def _store_cdr(self, call: dict[str, Any] | None, cdr: dict[str, Any]) -> None:
        try:
            self._commit_cdr(call, cdr)
        except StoreError:
            if call is not None:
                with contextlib.suppress(StoreError):
                    self._put_open(cdr["call_id"], {**call, "closing": cdr})
            raise

    def _commit_cdr(self, call: dict[str, Any] | None, cdr: dict[str, Any]) -> None:
        with self._store.write() as txn:
            self._cdr_in(txn, call, cdr)

    def _cdr_in(self, txn: Any, call: dict[str, Any] | None, cdr: dict[str, Any]) -> None:
        """The CDR's outbox entry and indexes, and the open record's removal, in ``txn``."""
        call_id = cdr["call_id"]
        done = {"cdr_id": cdr["cdr_id"], "answered": cdr["answer"] is not None, "at": time.time()}
        if call is not None and call.get("rtp_ports"):
            done["rtp_ports"] = call["rtp_ports"]
        packed = _pack(cdr)
        self.outbox.append_in(txn, [packed])
        txn.put(call_id.encode(), _pack(done), db=self._store.db(DONE))
        txn.put(f"{cdr['start']}|{cdr['cdr_id']}".encode(), packed, db=self._store.db(INDEX))
        if call is not None:
            txn.delete(call_id.encode(), db=self._store.db(OPEN))

    def _changed(self, kind: str, doc: dict[str, Any]) -> None:
        if self.on_change is not None:
            self.on_change(kind, doc)

    def prune(self, now: float) -> int:
        """Forget finished calls after DONE_KEEP_S and indexed CDRs after INDEX_KEEP_S."""
        self.flush()
        stale = [k for k, v in self.done.items() if v["at"] < now - DONE_KEEP_S]
        oldest = iso(now - INDEX_KEEP_S) or ""
        stale_index = [k for k, _ in self.index.items() if k < oldest]
        for key in stale:
            self.done.delete(key)
        for key in stale_index:
            self.index.delete(key)
        return len(stale) + len(stale_index)

    def _pending_cdr_ids(self) -> set[str]:
        ids: set[str] = set()
        after = 0
        while batch := self.outbox.read_batch(after, 500):
            for seq, payload in batch:
                ids.add(msgpack.unpackb(payload, raw=False).get("cdr_id"))
                after = seq
        return ids

    def search(
        self,
        since: str = "",
        disposition: str | None = None,
        number: str | None = None,
        limit: int = 50,
        cursor: str = "",
    ) -> tuple[list[dict[str, Any]], str | None]:
        """CDRs from ``since`` on (oldest first), filtered; returns a page and the next cursor."""
        self.flush()
        page: list[dict[str, Any]] = []
        last = cursor
        for key, cdr in self.index.items():
            if key <= cursor or key < since:
                continue
            if disposition and cdr["disposition"] != disposition:
                continue
            if number and number not in (cdr["caller"]["number"], cdr["callee"]["number"]):
                continue
            if len(page) == limit:
                return page, last
            page.append(cdr)
            last = key
        return page, None


def _pack(doc: Any) -> bytes:
    packed: bytes = msgpack.packb(doc, use_bin_type=True)
    return packed
