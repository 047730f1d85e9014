"""The SIM gateway's policy service: the PBX picks channels here, the driver reports here.

Theory of operation: the modem driver reports each channel's state (SIM identity,
registration, signal) with ``report``; the PBX reserves a channel with ``pick`` and hands
it back with ``call_ended``. Usage counters live in LMDB (``sim:usage:<iccid>``, one
atomic update per call) and are cached in memory for ``pick``, which never blocks. HQ
commands change the overrides document ``sim:policy`` (see commands.py). A loop, woken
by every report, call and command and every ``evaluate_interval_s``, applies the slot
policy: an operator's forced slot first, then the automatic switch of a stopped SIM.
Each switch is logged, kept in ``sim:switches`` (the last 50) and sent to HQ with the
SIM status, whose ``revision`` grows with every change the sync client should report.

Inventory: a multi-SIM channel's standby SIMs are read (see inventory.py) the first
time the channel is seen with a SIM, during ``start`` (before the PBX's GSM trunks
start, so no call can be on it), and whenever a card not known in the selected slot
appears there (a SIM inserted; a modem that comes back with the same card is not read
again), then by the slot loop and only while the channel is idle; it is marked busy
meanwhile, so no call is placed or held on it. Identities are
kept under ``sim:identity:<iccid>``, the channels inventoried under ``sim:inventoried``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import time
import uuid
import zoneinfo
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from typing import Any

from appliance.settings import SimLimitSettings, SimSettings
from appliance.sim import commands
from appliance.sim.inventory import take_inventory
from appliance.sim.limits import Limits, call_time_limit
from appliance.sim.model import (
    CHANNEL_ERRORS,
    CallOutcome,
    ChannelState,
    Pick,
    Refusal,
    SimChannel,
    SimIdentity,
)
from appliance.sim.policy import (
    Candidate,
    ReviewRule,
    SimView,
    SlotDecision,
    Strategy,
    channel_stopped,
    choose,
    collapse,
    slot_decision,
)
from appliance.sim.status import Placement, sim_record
from appliance.sim.usage import Usage, recorded, rolled
from appliance.store import StateStore, Store

log = logging.getLogger(__name__)

POLICY_KEY = "sim:policy"
SWITCHES_KEY = "sim:switches"
INVENTORIED_KEY = "sim:inventoried"
KEEP_SWITCHES = 50
DRIVER_TIMEOUT_S = 30.0
TRANSIENT = frozenset({"not-registered", "sim-removed"})


class SimService:
    """Owns SIM counters, overrides and channel states (a lifecycle component)."""

    name = "sim"

    def __init__(
        self,
        settings: SimSettings,
        timezone: str,
        store: Callable[[], Store],
        channels: Sequence[SimChannel] = (),
    ) -> None:
        self._settings = settings
        self._zone = zoneinfo.ZoneInfo(timezone)
        self._store = store
        self._channels = {c.channel: c for c in channels}
        self._order = {c.channel: i for i, c in enumerate(channels)}
        self._config = {s.iccid: s for s in settings.sims}
        self._rule = ReviewRule(
            settings.review_window,
            settings.review_min_baseline_calls,
            settings.review_ratio,
        )
        self._state: StateStore | None = None
        self.states: dict[str, ChannelState] = {}
        self._usage: dict[str, Usage] = {}
        self._policy: dict[str, Any] = {}
        self._slots: dict[str, dict[str, str]] = {}
        self._identities: dict[str, SimIdentity] = {}
        self._inventoried: set[str] = set()
        self._inventory_due: set[str] = set()
        self._reading: set[str] = set()
        self._inventories: set[asyncio.Task[None]] = set()
        self.switches: list[dict[str, Any]] = []
        self._busy: set[str] = set()
        self._last_switch: dict[str, float] = {}
        self._down_since: dict[str, float] = {}
        self._last_pick = -1
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._evaluating = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.revision = 0

    async def start(self) -> None:
        """Load state, read each channel and the slots of new ones, start the slot loop."""
        state = self._state = StateStore(self._store())
        self._policy = state.get(POLICY_KEY, {})
        self.switches = state.get(SWITCHES_KEY, [])
        self._usage = {k.split(":", 2)[2]: Usage.from_doc(v) for k, v in state.items("sim:usage:")}
        self._slots = {k.split(":", 2)[2]: v for k, v in state.items("sim:slots:")}
        self._identities = {
            k.split(":", 2)[2]: SimIdentity(**v) for k, v in state.items("sim:identity:")
        }
        self._inventoried = set(state.get(INVENTORIED_KEY, []))
        self._inventory_due = set(self._channels) - self._inventoried
        for channel in self._channels.values():
            await self._read(channel)
        for name, channel_state in list(self.states.items()):
            if name in self._inventory_due and channel_state.sim is not None:
                self._start_inventory(channel_state)
        await self.inventory_done()
        self._task = asyncio.create_task(self._evaluate_loop())

    async def _read(self, channel: SimChannel) -> None:
        try:
            self.report(await asyncio.wait_for(channel.read_state(), DRIVER_TIMEOUT_S))
        except CHANNEL_ERRORS as err:
            log.error(
                "cannot read a GSM channel; it takes no calls until the driver reports it",
                extra={"channel": channel.channel, "error": repr(err)},
            )

    async def stop(self) -> None:
        for task in [self._task, *self._inventories]:
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    def report(self, state: ChannelState) -> None:
        """The driver's latest view of a channel (on start, registration change, SIM event)."""
        before = self.states.get(state.channel)
        if before == state or state.channel in self._reading:
            return
        self.states[state.channel] = state
        if state.sim is not None and self._is_new_card(state.channel, state.slot, state.sim):
            self._inventory_due.add(state.channel)
        if state.registered and state.sim is not None:
            self._down_since.pop(state.channel, None)
        else:
            self._down_since.setdefault(state.channel, time.monotonic())
        if state.sim is not None:
            self._place(state.channel, state.slot, state.sim)
        self._changed()

    def _is_new_card(self, channel: str, slot: int, sim: SimIdentity) -> bool:
        """A card not known in this slot of an inventoried channel: one was inserted."""
        known = self._slots.get(channel, {}).get(str(slot))
        return channel in self._inventoried and known != sim.iccid

    def _place(self, channel: str, slot: int, sim: SimIdentity | None) -> None:
        """Remember which SIM (None: none) sits in a slot, and its identity."""
        slots = self._slots.setdefault(channel, {})
        iccid = sim.iccid if sim is not None else None
        if slots.get(str(slot)) != iccid:
            if iccid is None:
                slots.pop(str(slot), None)
            else:
                slots[str(slot)] = iccid
            self._put(f"sim:slots:{channel}", slots)
        if sim is not None and self._identities.get(sim.iccid) != sim:
            self._identities[sim.iccid] = sim
            self._put(f"sim:identity:{sim.iccid}", dataclasses.asdict(sim))

    def pick(
        self,
        now: datetime.datetime | None = None,
        among: Collection[str] | None = None,
        strategy: Strategy | None = None,
    ) -> Pick | Refusal:
        """Reserve a channel for an outbound call, or say why none can take it.

        ``among`` limits the choice to some channels (a GSM trunk group, less those a
        call already tried); ``strategy`` overrides ``sim.strategy`` for that group.
        """
        local = self._local(now)
        candidates, reasons = [], {}
        for name, state in self.states.items():
            if among is not None and name not in among:
                continue
            sim = self.view(state.sim.iccid, local) if state.sim else None
            why = (
                "busy"
                if name in self._busy
                else channel_stopped(state, sim, local, self._settings.max_failures)
            )
            if why is None and sim is not None:
                candidates.append(Candidate(state, sim, self._order.get(name, len(self._order))))
            else:
                reasons[name] = why or "sim-removed"
        if not candidates:
            return Refusal("no-sim-channel", "no GSM channel can take a call now", reasons)
        chosen = choose(candidates, strategy or self._settings.strategy, self._last_pick)
        self._last_pick = chosen.order
        self._busy.add(chosen.state.channel)
        limit = call_time_limit(chosen.sim.limits, chosen.sim.usage)
        return Pick(chosen.state.channel, chosen.sim.iccid, limit)

    def sms_sim(self, channel: str) -> SimIdentity | None:
        """The SIM that may send an SMS on ``channel`` now: registered, not disabled or retired.

        Call limits do not apply to SMS (they have their own rate limit in the gateway).
        """
        state = self.states.get(channel)
        if state is None or state.sim is None or not state.registered:
            return None
        sim = self.view(state.sim.iccid, self._local(None))
        return None if sim.disabled or sim.retired else state.sim

    def hold(self, channel: str) -> bool:
        """Mark an idle channel busy for an incoming call; False when it is reserved already."""
        if channel in self._busy:
            return False
        self._busy.add(channel)
        return True

    def release(self, channel: str) -> None:
        """Hand back a reserved channel whose call never started."""
        self._busy.discard(channel)
        self._wake.set()

    async def call_ended(self, outcome: CallOutcome) -> None:
        """Count a finished call against its SIM and hand the channel back."""
        local = outcome.ended.astimezone(self._zone).date()
        acks = self._sim_override(outcome.iccid).get("review_cleared", 0)

        def change(doc: Any) -> Any:
            usage = _acknowledged(Usage.from_doc(doc), acks)
            usage = recorded(
                usage,
                local,
                outcome.answered,
                outcome.connected_s,
                self._settings.effective_call_s,
                self._settings.review_window,
            )
            if not usage.review:
                usage = replace(usage, review=collapse(usage, self._rule) or "")
            return usage.to_doc()

        async with self._lock:
            doc = await asyncio.to_thread(self._update, f"sim:usage:{outcome.iccid}", change)
        before = self._usage.get(outcome.iccid, Usage())
        self._usage[outcome.iccid] = usage = Usage.from_doc(doc)
        if usage.review and not before.review:
            log.warning(
                "SIM needs review: its answer rate collapsed; it keeps working until a "
                "person decides (clear the flag, disable or retire it at HQ)",
                extra={"iccid": outcome.iccid, "reason": usage.review},
            )
        self._busy.discard(outcome.channel)
        self._changed()

    async def apply_command(
        self, command_id: str, kind: str, args: dict[str, Any]
    ) -> tuple[bool, str]:
        """Apply an HQ command once (re-sent commands answer their first result)."""
        async with self._lock:
            doc = await asyncio.to_thread(
                self._update, POLICY_KEY, lambda d: commands.apply(d, command_id, kind, args)
            )
        self._policy = doc
        if kind == "sim-clear-review" and isinstance(args.get("iccid"), str):
            await self._clear_review(args["iccid"])
        self._changed()
        return commands.result(doc, command_id)

    async def _clear_review(self, iccid: str) -> None:
        acks = self._sim_override(iccid).get("review_cleared", 0)
        async with self._lock:
            doc = await asyncio.to_thread(
                self._update,
                f"sim:usage:{iccid}",
                lambda d: _acknowledged(Usage.from_doc(d), acks).to_doc(),
            )
        self._usage[iccid] = Usage.from_doc(doc)

    def view(self, iccid: str, local: datetime.datetime | None = None) -> SimView:
        """The policy's view of a SIM at ``local`` (default now): limits, counters, flags."""
        override = self._sim_override(iccid)
        usage = rolled(self._usage.get(iccid, Usage()), self._local(local).date())
        return SimView(
            iccid,
            self.limits(iccid),
            usage,
            bool(override.get("disabled")),
            bool(override.get("retired")),
        )

    def limits(self, iccid: str) -> Limits:
        """Effective limits: group config < group HQ < SIM config < SIM HQ."""
        card = self._config.get(iccid)
        group = self.group(iccid)
        layers = [
            _from_settings(self._settings.groups.get(group)),
            Limits.from_doc(self._policy.get("groups", {}).get(group, {})),
            _from_settings(card.limits if card else None),
            Limits.from_doc(self._sim_override(iccid).get("limits", {})),
        ]
        effective = Limits()
        for layer in layers:
            effective = layer.over(effective)
        return effective

    def group(self, iccid: str) -> str:
        """The SIM's group: HQ's choice, else the config's, else ``default``."""
        card = self._config.get(iccid)
        return str(self._sim_override(iccid).get("group") or (card.group if card else "default"))

    def _sim_override(self, iccid: str) -> dict[str, Any]:
        found: dict[str, Any] = self._policy.get("sims", {}).get(iccid, {})
        return found

    def _local(self, now: datetime.datetime | None) -> datetime.datetime:
        return (now or datetime.datetime.now(datetime.UTC)).astimezone(self._zone)

    async def _evaluate_loop(self) -> None:
        while True:
            self._wake.clear()
            await self.evaluate()
            woken = asyncio.create_task(self._wake.wait())
            try:
                await asyncio.wait([woken], timeout=self._settings.evaluate_interval_s)
            finally:
                woken.cancel()

    async def evaluate(self, now: datetime.datetime | None = None) -> None:
        """Apply forced slots and automatic switches to idle channels (one pass at a time)."""
        async with self._evaluating:
            await self._evaluate(self._local(now))

    async def _evaluate(self, local: datetime.datetime) -> None:
        for name, state in list(self.states.items()):
            if name in self._busy or name not in self._channels:
                continue
            if name in self._inventory_due and state.sim is not None:
                self._start_inventory(state)
                continue
            forced = self._policy.get("force", {}).get(name)
            if forced is not None:
                await self._drop_force(name)
                if forced != state.slot:
                    await self._switch(state, forced, "operator")
                continue
            decision = self._decide(state, local)
            if decision is not None:
                await self._switch(state, decision.to_slot, decision.reason)

    def _decide(self, state: ChannelState, local: datetime.datetime) -> SlotDecision | None:
        last = self._last_switch.get(state.channel)
        if last is not None and time.monotonic() - last < self._settings.switch_cooldown_s:
            return None
        sim = self.view(state.sim.iccid, local) if state.sim else None
        stopped = channel_stopped(state, sim, local, self._settings.max_failures)
        down = self._down_since.get(state.channel)
        if stopped in TRANSIENT and (
            down is None or time.monotonic() - down < self._settings.unregistered_grace_s
        ):
            # Modems drop registration while booting or moving cells: not a reason yet.
            return None
        other_slot = (state.slot + 1) % state.slots
        other_iccid = self._slots.get(state.channel, {}).get(str(other_slot))
        other = self.view(other_iccid, local) if other_iccid else None
        return slot_decision(state, stopped, other_slot, other, local, self._settings.max_failures)

    async def _drop_force(self, channel: str) -> None:
        def change(doc: Any) -> Any:
            doc = dict(doc or {})
            doc["force"] = {k: v for k, v in doc.get("force", {}).items() if k != channel}
            return doc

        async with self._lock:
            self._policy = await asyncio.to_thread(self._update, POLICY_KEY, change)

    def _start_inventory(self, state: ChannelState) -> None:
        """Read the channel's other slots in the background; it stays busy until done."""
        self._inventory_due.discard(state.channel)
        if state.slots < 2:
            self._mark_inventoried(state.channel)
            return
        self._busy.add(state.channel)
        self._reading.add(state.channel)
        task = asyncio.create_task(self._inventory(state), name=f"inventory-{state.channel}")
        self._inventories.add(task)
        task.add_done_callback(self._inventories.discard)

    async def _inventory(self, state: ChannelState) -> None:
        log.info("reading every SIM slot", extra={"channel": state.channel})
        try:
            found = await take_inventory(self._channels[state.channel], state, DRIVER_TIMEOUT_S)
        finally:
            self._busy.discard(state.channel)
            self._reading.discard(state.channel)
        for slot, sim in found.slots.items():
            self._place(state.channel, slot, sim)
        self._mark_inventoried(state.channel)
        log.info(
            "SIM slots read",
            extra={"channel": state.channel, "slots": self._slots.get(state.channel, {})},
        )
        self.report(found.home)
        self._changed()

    async def inventory_done(self) -> None:
        """Wait until the slot readings under way have finished."""
        await asyncio.gather(*self._inventories, return_exceptions=True)

    def _mark_inventoried(self, channel: str) -> None:
        if channel not in self._inventoried:
            self._inventoried.add(channel)
            self._put(INVENTORIED_KEY, sorted(self._inventoried))

    async def _switch(self, state: ChannelState, slot: int, reason: str) -> None:
        driver = self._channels[state.channel]
        self._busy.add(state.channel)
        self._last_switch[state.channel] = time.monotonic()
        try:
            await asyncio.wait_for(driver.select_slot(slot), DRIVER_TIMEOUT_S)
            fresh = await asyncio.wait_for(driver.read_state(), DRIVER_TIMEOUT_S)
        except CHANNEL_ERRORS as err:
            log.error(
                "SIM slot switch failed; the channel keeps its current state",
                extra={"channel": state.channel, "slot": slot, "error": repr(err)},
            )
            return
        finally:
            self._busy.discard(state.channel)
        event = {
            "id": uuid.uuid4().hex,
            "at_ms": int(time.time() * 1000),
            "channel": state.channel,
            "modem": state.modem,
            "from_slot": state.slot,
            "to_slot": fresh.slot,
            "from_iccid": state.sim.iccid if state.sim else "",
            "to_iccid": fresh.sim.iccid if fresh.sim else "",
            "reason": reason,
        }
        log.info("SIM slot switched", extra=event)
        self.switches = [*self.switches, event][-KEEP_SWITCHES:]
        await asyncio.to_thread(self._put, SWITCHES_KEY, self.switches)
        if fresh.sim is not None:
            self._place(fresh.channel, fresh.slot, fresh.sim)  # seen now: no inventory for it
        self.report(fresh)
        self._changed()

    def records(self, now: datetime.datetime | None = None) -> list[dict[str, Any]]:
        """Every SIM this site knows (selected or standby), for HQ's fleet view."""
        local = self._local(now)
        out = []
        for channel, slots in sorted(self._slots.items()):
            state = self.states.get(channel)
            for slot, iccid in sorted(slots.items()):
                selected = (
                    state is not None
                    and state.sim is not None
                    and (state.sim.iccid == iccid and str(state.slot) == slot)
                )
                out.append(
                    self._record(channel, int(slot), iccid, state if selected else None, local)
                )
        return out

    def _record(
        self,
        channel: str,
        slot: int,
        iccid: str,
        state: ChannelState | None,
        local: datetime.datetime,
    ) -> dict[str, Any]:
        sim = self.view(iccid, local)
        if state is None:
            status, reason = "standby", ""
        else:
            reason = channel_stopped(state, sim, local, self._settings.max_failures) or ""
            status = "stopped" if reason else ("busy" if channel in self._busy else "active")
        if sim.retired or sim.disabled:
            status = "retired" if sim.retired else "disabled"
        where = Placement(channel, slot, state, self.group(iccid), self._identities.get(iccid))
        return sim_record(sim, where, status, reason, self.switches)

    def check(self) -> tuple[bool, str]:
        """Health: how many channels are known and how many may take a call now."""
        local = self._local(None)
        ready = sum(
            1
            for state in self.states.values()
            if state.sim is not None
            and channel_stopped(
                state, self.view(state.sim.iccid, local), local, self._settings.max_failures
            )
            is None
        )
        return True, f"{ready} of {len(self.states)} GSM channels can take calls"

    def _changed(self) -> None:
        self.revision += 1
        self._wake.set()

    def _update(self, key: str, change: Callable[[Any], Any]) -> Any:
        assert self._state is not None
        return self._state.update(key, change)

    def _put(self, key: str, value: Any) -> None:
        assert self._state is not None
        self._state.put(key, value)


def _acknowledged(usage: Usage, acks: int) -> Usage:
    """Clear the review flag (and the window that raised it) the operator acknowledged."""
    if acks <= usage.review_acks:
        return usage
    return replace(usage, review="", recent=(), review_acks=acks)


def _from_settings(section: SimLimitSettings | None) -> Limits:
    if section is None:
        return Limits()
    return Limits.from_doc(section.model_dump(exclude_none=True))
