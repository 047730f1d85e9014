"""ContactService: runs the ACD for the callers media workers hold in queues.

Theory of operation: a worker reports a caller (``queue start``); the service enters it
in the ACD, starts the queue's hold music and offers waiting callers to free agents at
once (``_dispatch``, also after an agent logs in or resumes). An offer makes the
caller's worker ring the agent; the worker reports ringing, answer and end of the agent
leg, and the ACD's states follow. A timer task wakes at the next deadline (at most
``IDLE_S`` later) and ``tick`` ends ring timeouts (the agent leg is cancelled; the agent
pauses with ``no-answer``), wrap-ups and maximum waits (overflow target, or hang up).
Agents' states are written to LMDB when a restart would restore them differently (login,
logout, pause, resume) and read back at start, so login and pause survive a restart;
every change also goes into the agent state log for HQ, in the same commit or, for
changes on the way to an offer, right after the step (appliance/contact/state_log.py);
``registrations`` (Kamailio's registered extensions, polled by the wiring) keeps agents
whose phone is gone from being offered calls. Each queued call's CDR carries queue
fields (``queue_*`` variables, synced to HQ with the CDR); every change is published on
the CTI stream.

The queue's strategy may ring several agents for one caller (ring-all): each is a
``Ringing`` of its own, keyed by (caller, agent), and the worker bridges the first to
answer. A caller offered a callback (``callback_after_s``) who presses 1 is hung up but
stays in the ACD (stored in LMDB until an agent answers); its offer goes to a worker with
a free slot (``place``) as ``queue-callback``: the agent leg first, then the caller; a
caller who does not answer is tried again (appliance/contact/callback_retries.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from appliance.contact.acd import Acd, Agent, Waiting, wait_words
from appliance.contact.callback_retries import CallbackRetries
from appliance.contact.callbacks import CallbackStore, StoredCallback
from appliance.contact.choice import parse_skills
from appliance.contact.cti import CtiStream
from appliance.contact.settings import ContactSettings
from appliance.contact.state_log import AgentStateLog
from appliance.contact.stats import QueueTally, live_part
from appliance.store import Store
from appliance.store.state import StateStore
from drivers.media.protocol import (
    Command,
    Event,
    Prompt,
    QueueAnnounce,
    QueueCancel,
    QueueEvent,
    QueueHangup,
    QueueHold,
    QueueOffer,
    QueueTransfer,
)

log = logging.getLogger(__name__)

IDLE_S = 1.0
HANDOVER_S = 30.0
FULL_WORKER_S = 5.0
RESTORED_AVAILABLE = ("ringing", "on-call", "wrap-up")
NAMESPACE = "contact-agents"
TURNS = "contact-turns"
DEFAULT_HOLD = Prompt(tone_hz=425, on_ms=1000, off_ms=2000)


class Worker(Protocol):
    """What the service needs of a media worker."""

    def send(self, command: Command) -> bool: ...


@dataclass
class Ringing:
    """An agent being rung for a caller, until ``deadline``."""

    agent: str
    queue: str
    deadline: float


class ContactService:
    """Queues, agents and the calls between them."""

    def __init__(
        self,
        settings: ContactSettings,
        prompts: dict[str, Prompt],
        annotate: Callable[[str, dict[str, str]], None],
        clock: Callable[[], float] = time.time,
        speak: Callable[[str, str], Awaitable[Path]] | None = None,
        place: Callable[[], Worker | None] | None = None,
    ) -> None:
        self.settings = settings
        self.acd = Acd(settings.queues)
        self.cti = CtiStream()
        self._prompts = prompts
        self._annotate = annotate
        self._clock = clock
        self._workers: dict[str, Worker] = {}
        self._ringing: dict[tuple[str, str], Ringing] = {}
        self._talking: dict[str, tuple[str, str]] = {}
        self._store: Store | None = None
        self._state: StateStore | None = None
        self._turns: StateStore | None = None
        self._log: AgentStateLog | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._saved: dict[str, tuple[str, str]] = {}
        self._speak = speak
        self._announce_at: dict[str, float] = {}
        self._expected: dict[str, tuple[str, dict[str, str], float]] = {}
        self._speaking: set[asyncio.Task[None]] = set()
        self._place = place
        self._callback_at: dict[str, float] = {}
        self._callback_offered: set[str] = set()
        self.retries = CallbackRetries(settings.queues, annotate)
        self.tally = QueueTally()

    async def start(self, store: Store) -> None:
        """Read agents' states back from LMDB (and log them as restored), start the tick."""
        self._store = store
        self._state = StateStore(store, NAMESPACE)
        self._log = AgentStateLog(store)
        now = self._clock()
        for _, doc in self._state.items():
            self.acd.restore(doc, now)
        for agent in self.acd.agents.values():
            self._save(agent)
        self._turns = StateStore(store, TURNS)
        for queue, last in self._turns.items():
            if queue in self.acd.queues and isinstance(last, str):
                self.acd.last_offered[queue] = last
        self.retries.store = CallbackStore(store)
        for callback in self.retries.store.waiting():
            self._restore_callback(callback)
        if self._speak is not None:
            task = asyncio.create_task(self.retries.prepare(self._speak))
            self._speaking.add(task)
            task.add_done_callback(self._speaking.discard)
        self._task = asyncio.create_task(self._ticking(), name="contact-tick")

    async def stop(self) -> None:
        """Stop the tick and the announcements; commit the state log; end the CTI streams."""
        for task in list(self._speaking):
            task.cancel()
        await asyncio.gather(*self._speaking, return_exceptions=True)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._log is not None:
            self._log.flush()
        self.cti.close()

    def on_event(self, worker: Worker, event: Event) -> None:
        """A ``queue`` event of a media worker (other events are not the service's)."""
        if not isinstance(event, QueueEvent):
            return
        state, call_id = event.state, event.id
        if state == "start":
            self._enter(worker, call_id, event.queue, event.caller)
        elif state == "agent-ringing":
            self._publish_call("call.agent-ringing", call_id, agent=event.agent)
        elif state == "agent-answered":
            self._answered(call_id, event.agent)
        elif state == "agent-ended" and event.reason == "worker-full":
            self._worker_full(call_id, event.agent)
        elif state == "agent-ended":
            self._agent_ended(call_id, event.agent, bool(event.answered))
        elif state == "ended":
            self._caller_gone(call_id, "abandoned")
        elif state == "digit":
            self._digit(call_id, event.digit)
        elif state in ("callback-ringing", "callback-answered", "callback-ended"):
            self._callback_progress(call_id, state, event)
        self._dispatch()

    def worker_lost(self, worker: Worker) -> None:
        """A worker exited with its callers and agent legs."""
        for call_id in [c for c, w in self._workers.items() if w is worker]:
            for key in [k for k in self._ringing if k[0] == call_id]:
                ringing = self._ringing.pop(key)
                self.acd.released(call_id, ringing.agent, self._clock())
                self._save(self.acd.agents[ringing.agent])
            self._agent_ended(call_id, self._talking.get(call_id, ("", ""))[0], True)
            self._caller_gone(call_id, "interrupted")
            self._try_ended(call_id, "")
        self._dispatch()

    def login(self, number: str) -> Agent:
        """Log the agent in (AcdError when it is no agent)."""
        agent = self._changed(self.acd.login(number, self._clock()))
        self._dispatch()
        return agent

    def logout(self, number: str) -> Agent:
        """Log the agent out (AcdError while it rings or talks)."""
        return self._changed(self.acd.logout(number, self._clock()))

    def pause(self, number: str, reason: str) -> Agent:
        """Pause the agent with a reason (AcdError while it rings or talks)."""
        return self._changed(self.acd.pause(number, reason, self._clock()))

    def resume(self, number: str) -> Agent:
        """End the agent's pause."""
        agent = self._changed(self.acd.resume(number, self._clock()))
        self._dispatch()
        return agent

    def member_joined(self, agent: Agent) -> None:
        """A queue gained the member ``agent``: its state is stored and published (a
        new agent, logged out), and waiting callers may be offered to it at once."""
        self._changed(agent)
        self._dispatch()

    def expect(self, to: str, caller: str, variables: dict[str, str]) -> None:
        """An IVR flow is sending ``caller`` to ``to``: when that is a queue, the flow's
        variables (screen pop; ``priority``, a digit, ranks the caller) go with the caller
        who arrives there within ``HANDOVER_S``."""
        if to.removeprefix("queue-") in self.settings.queues and to.startswith("queue-"):
            self._expected[caller] = (to, variables, self._clock() + HANDOVER_S)

    def handing_over(self, caller: str, to: str) -> bool:
        """Whether an IVR flow sent ``caller`` to the queue user ``to`` within
        ``HANDOVER_S`` (a trunk caller's transferred call may enter that queue)."""
        found = self._expected.get(caller)
        return found is not None and found[0] == to and found[2] >= self._clock()

    def registrations(self, users: Collection[str]) -> None:
        """The extensions registered now: agents whose phone is gone get no offers."""
        for agent in self.acd.agents.values():
            registered = agent.number in users
            if agent.registered != registered:
                self.acd.registered(agent.number, registered)
                self._changed(agent)
        self._dispatch()

    def agent_call(self, agent: str) -> tuple[str, str, Worker] | None:
        """The queue call ``agent`` talks on: the caller's Call-ID, the queue, its worker."""
        for call_id, (number, queue) in self._talking.items():
            worker = self._workers.get(call_id)
            if number == agent and worker is not None:
                return call_id, queue, worker
        return None

    def calling_back(self, agent: str, number: str) -> bool:
        """Whether a callback try from ``agent`` (answered) to ``number`` is under way."""
        return any(talking == agent and self.retries.trying(call_id, number)
                   for call_id, (talking, _queue) in self._talking.items())  # fmt: skip

    def agent_offer(self, agent: str) -> tuple[str, str, Worker] | None:
        """The queued caller ringing ``agent`` now (not a callback): Call-ID, queue, worker."""
        for (call_id, number), ringing in self._ringing.items():
            entry = self.acd.find(call_id)
            worker = self._workers.get(call_id)
            if number == agent and entry is not None and not entry.callback and worker:
                return call_id, ringing.queue, worker
        return None

    def snapshot(self) -> dict[str, Any]:
        """Live queues: waiting callers with position and wait, agents with state."""
        now = self._clock()
        queues = []
        for name, settings in self.acd.queues.items():
            waiting = [{"call_id": w.call_id, "caller": w.caller, "priority": w.priority,
                        "position": i + 1, "wait_s": round(now - w.entered, 1),
                        "offered_to": w.offered_to or None, "offered": list(w.offered),
                        "callback": w.callback}
                       for i, w in enumerate(self.acd.waiting[name])]  # fmt: skip
            agents = [self._agent_doc(self.acd.agents[n], now) for n in settings.numbers]
            queues.append({"name": name, "number": settings.number, "waiting": waiting,
                           "agents": agents})  # fmt: skip
        return {"queues": queues}

    def live_stats(self) -> dict[str, object]:
        """Per queue: waiting, longest wait, agents by state, today's outcomes (HQ's
        wallboard, sent as a live status part)."""
        return live_part(self.acd, self.tally, self._clock())

    def _enter(self, worker: Worker, call_id: str, queue: str, caller: str) -> None:
        settings = self.settings.queues.get(queue)
        if settings is None:
            log.warning("queue %r is not configured: call %s hung up", queue, call_id)
            worker.send(QueueHangup(call_id))
            return
        self._workers[call_id] = worker
        self._wake.set()
        _to, variables, expires = self._expected.pop(caller, ("", {}, 0.0))
        if expires < self._clock():
            variables = {}
        rank = variables.get("priority", "")
        priority = int(rank) if len(rank) == 1 and rank.isdigit() else None
        skills = wanted_skills(call_id, variables.get("skills"))
        entry = self.acd.enter(call_id, queue, caller, self._clock(), priority, skills)
        entry.variables = variables
        if settings.announce_every_s > 0 and self._speak is not None:
            self._announce_at[call_id] = entry.entered + settings.announce_every_s
        if settings.callback_after_s > 0 and self._speak is not None and self._place:
            self._callback_at[call_id] = entry.entered + settings.callback_after_s
        prompt = self._prompts.get(settings.hold_prompt or "", DEFAULT_HOLD)
        worker.send(QueueHold(call_id, prompt))
        self._annotate(call_id, {"queue": queue, "queue_position": str(entry.position),
                                 "queue_priority": str(entry.priority),
                                 "queue_entered": f"{time.time():.3f}",
                                 "queue_outcome": "abandoned"})  # fmt: skip
        self._publish_call("call.queued", call_id, entry=entry)

    def _dispatch(self) -> None:
        now = self._clock()
        for offer in self.acd.offers(now):
            entry = self.acd.find(offer.call_id)
            caller = entry.caller if entry else ""
            command: Command = QueueOffer(offer.call_id, offer.agent, f"{offer.queue}: {caller}")
            if entry is not None and entry.callback:
                command = self.retries.command(offer.queue, offer.call_id, offer.agent, caller,
                                               f"callback {offer.queue}: {caller}")  # fmt: skip
            worker = self._worker_for(offer.call_id, entry)
            if worker is None:
                self._changed_released(offer.call_id, offer.agent, now)
                continue
            ring_s = self.settings.queues[offer.queue].ring_timeout_s
            self._ringing[offer.call_id, offer.agent] = Ringing(offer.agent, offer.queue,
                                                                now + ring_s)  # fmt: skip
            self._changed(self.acd.agents[offer.agent])
            worker.send(command)
            self._publish_call("call.offered", offer.call_id, agent=offer.agent)
            self._save_turn(offer.queue)

    def _answered(self, call_id: str, agent: str) -> None:
        if (call_id, agent) not in self._ringing:
            return
        entry = self.acd.answered(call_id, agent, self._clock())
        if entry is None:
            return
        del self._ringing[call_id, agent]
        self._forget_prompts(call_id)
        self._talking[call_id] = (agent, entry.queue)
        self._changed(self.acd.agents[agent])
        wait = self._clock() - entry.entered
        level = self.settings.queues[entry.queue].service_level_s
        if entry.tries == 0:  # a callback's retry is not answered a second time
            self.tally.answered(entry.queue, wait, level, self._clock())
        if entry.callback:
            self.retries.started(entry, self._clock())
        if not entry.callback:  # a callback's CDR closed when the caller hung up
            self._annotate(call_id, {"queue_outcome": "answered", "queue_agent": agent,
                                     "queue_wait_s": f"{wait:.1f}",
                                     "queue_sl_met": str(wait <= level).lower()})  # fmt: skip
        self._publish_call("call.answered", call_id, agent=agent, wait_s=round(wait, 1))

    def _agent_ended(self, call_id: str, agent: str, answered: bool) -> None:
        now = self._clock()
        talking = self._talking.get(call_id)
        if answered and talking is not None and talking[0] == agent:
            del self._talking[call_id]
            self.acd.finished(agent, talking[1], now)
            self._changed(self.acd.agents[agent])
            self._publish_call("call.ended", call_id, agent=agent)
            return
        if self._ringing.pop((call_id, agent), None) is None:
            return
        if self.acd.find(call_id) is None:
            self.acd.released(call_id, agent, now)
        else:
            self.acd.declined(call_id, agent, now)
        self._changed(self.acd.agents[agent])

    def _worker_full(self, call_id: str, agent: str) -> None:
        """The caller's worker had no slot for the agent's leg: the agent is free at once
        (no ``no-answer`` pause) and the callers behind get it; this caller is offered
        again ``FULL_WORKER_S`` later, when a call of its worker may have ended."""
        if self._ringing.pop((call_id, agent), None) is None:
            return
        now = self._clock()
        self.acd.released(call_id, agent, now)
        entry = self.acd.find(call_id)
        if entry is not None:
            entry.not_before = max(entry.not_before, now + FULL_WORKER_S)
        log.info("call %s: its worker has no slot to ring agent %s", call_id, agent)
        self._changed(self.acd.agents[agent])

    def _caller_gone(self, call_id: str, outcome: str) -> None:
        waiting = self.acd.find(call_id)
        if waiting is not None and waiting.callback:
            return  # hung up on purpose: it keeps its place
        worker = self._workers.pop(call_id, None)
        self._forget_prompts(call_id)
        entry = self.acd.leave(call_id)
        if entry is None:
            return
        if outcome == "abandoned":
            self.tally.abandoned(entry.queue, self._clock())
        else:
            wait = f"{self._clock() - entry.entered:.1f}"
            self._annotate(call_id, {"queue_outcome": outcome, "queue_wait_s": wait})
        if entry.offered and worker is not None:
            worker.send(QueueCancel(call_id))
        self._publish_call(f"call.{outcome}", call_id, entry=entry)

    async def _ticking(self) -> None:
        while True:
            wait = min(IDLE_S, max(0.0, self._next_deadline() - self._clock()))
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel that
            # arrives as the event is set, and stop() would wait for this task forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            self._wake.clear()
            try:
                self.tick()
            except Exception:
                log.exception("contact centre tick failed")

    def tick(self) -> None:
        """Ring timeouts, wrap-ups and maximum waits at the current time; new offers."""
        now = self._clock()
        for agent in self.acd.tick(now):
            self._changed(agent)
        for (call_id, number), ringing in list(self._ringing.items()):
            worker = self._workers.get(call_id)
            if now >= ringing.deadline and worker is not None:
                ringing.deadline = float("inf")
                worker.send(QueueCancel(call_id, number))
        for entry in self.acd.expired(now):
            self._overflow(entry)
        self._dispatch()
        for call_id, at in list(self._announce_at.items()):
            if now >= at:
                self._announce(call_id, now)
        for call_id, at in list(self._callback_at.items()):
            if now >= at:
                self._offer_callback(call_id, now)

    def _announce(self, call_id: str, now: float) -> None:
        entry = self.acd.find(call_id)
        if entry is None:
            self._announce_at.pop(call_id, None)
            return
        settings = self.settings.queues[entry.queue]
        self._announce_at[call_id] = now + settings.announce_every_s
        if entry.offered_to:
            return
        text = settings.announcement.replace("{position}", str(self.acd.position(call_id)))
        text = text.replace("{wait_minutes}", wait_words(self.acd.expected_wait(call_id)))
        task = asyncio.get_running_loop().create_task(self._say(call_id, text, settings.language))
        self._speaking.add(task)
        task.add_done_callback(self._speaking.discard)

    async def _say(self, call_id: str, text: str, language: str) -> None:
        """Render the position announcement, then play it unless the caller moved on."""
        assert self._speak is not None
        try:
            path = await self._speak(text, language)
        except Exception:
            log.exception("position announcement for %s not rendered", call_id)
            return
        entry, worker = self.acd.find(call_id), self._workers.get(call_id)
        if entry is not None and not entry.offered_to and worker is not None:
            worker.send(QueueAnnounce(call_id, Prompt(file=str(path))))
            self._publish_call("call.announced", call_id, text=text)

    def _next_deadline(self) -> float:
        deadlines = [*self._announce_at.values(), *self._callback_at.values()]
        deadlines += [r.deadline for r in self._ringing.values()]
        deadlines += [a.wrapup_until for a in self.acd.agents.values() if a.state == "wrap-up"]
        # a caller being offered or waiting for a callback does not expire: no deadline
        deadlines += [w.entered + self.settings.queues[w.queue].max_wait_s
                      for line in self.acd.waiting.values() for w in line
                      if not w.offered and not w.callback]  # fmt: skip
        return min(deadlines, default=float("inf"))

    def _forget_prompts(self, call_id: str) -> None:
        """The caller left the queue: no more announcements or callback offer."""
        self._announce_at.pop(call_id, None)
        self._callback_at.pop(call_id, None)
        self._callback_offered.discard(call_id)

    def _worker_for(self, call_id: str, entry: Waiting | None) -> Worker | None:
        """The caller's worker; for a callback, a worker with a free slot (None: none)."""
        if entry is None or not entry.callback or self._place is None:
            return self._workers.get(call_id)
        worker = self._place()
        if worker is not None:
            self._workers[call_id] = worker
        return worker

    def _changed_released(self, call_id: str, agent: str, now: float) -> None:
        log.warning("callback %s: no media worker free to ring agent %s", call_id, agent)
        self.acd.released(call_id, agent, now)
        self._changed(self.acd.agents[agent])

    def _callback_progress(self, call_id: str, state: str, event: QueueEvent) -> None:
        """The call back to the caller rang, was answered (the callback is done) or ended
        (unanswered: tried again or failed)."""
        leg_call_id = event.sip_call_id
        if state == "callback-ringing":
            self.retries.ringing(call_id, leg_call_id)
            return
        if state == "callback-ended" and self.acd.find(call_id) is None:
            self._workers.pop(call_id, None)
        answered = event.answered is not False
        self.cti.publish(f"call.{state}", call_id=call_id, agent=event.agent,
                         answered=answered)  # fmt: skip
        if state == "callback-answered":
            self.retries.answered(call_id)
        elif not answered:
            self._try_ended(call_id, leg_call_id)

    def _try_ended(self, call_id: str, leg_call_id: str) -> None:
        """A try of a callback ended unanswered: it waits in its place for the next try,
        or it failed (``call.callback-retry`` / ``call.callback-failed``)."""
        ended = self.retries.ended(call_id, leg_call_id, self._clock())
        if ended is None:
            return
        entry = ended.entry
        if ended.retry_at is None:
            self._publish_call("call.callback-failed", call_id, entry=entry, tries=entry.tries)
            return
        self.acd.wait_again(entry, ended.retry_at)
        self._wake.set()
        self._publish_call("call.callback-retry", call_id, tries=entry.tries,
                           retry_at=round(ended.retry_at, 3))  # fmt: skip

    def _offer_callback(self, call_id: str, now: float) -> None:
        """Offer the waiting caller a callback ("press 1"), once; later if it is being
        offered to an agent right now."""
        entry = self.acd.find(call_id)
        if entry is None or self._workers.get(call_id) is None:
            self._callback_at.pop(call_id, None)
            return
        if entry.offered:
            self._callback_at[call_id] = now + IDLE_S
            return
        del self._callback_at[call_id]
        settings = self.settings.queues[entry.queue]
        self._callback_offered.add(call_id)
        self._annotate(call_id, {"queue_callback_offered": "true"})
        self._publish_call("call.callback-offered", call_id)
        prompt = self._say(call_id, settings.callback_prompt, settings.language)
        task = asyncio.get_running_loop().create_task(prompt)
        self._speaking.add(task)
        task.add_done_callback(self._speaking.discard)

    def _digit(self, call_id: str, digit: str) -> None:
        """1 after the callback offer: the caller hangs up and keeps its place."""
        entry = self.acd.find(call_id)
        if digit != "1" or call_id not in self._callback_offered or entry is None:
            return
        if entry.offered or entry.callback:
            return
        entry.callback = True
        self._forget_prompts(call_id)
        self.retries.requested(entry)
        worker = self._workers.pop(call_id, None)
        wait = self._clock() - entry.entered
        self._annotate(call_id, {"queue_outcome": "callback", "queue_wait_s": f"{wait:.1f}"})
        if worker is not None:
            worker.send(QueueHangup(call_id))
        self._publish_call("call.callback-requested", call_id)

    def _restore_callback(self, stored: StoredCallback) -> None:
        """A caller stored waiting for a callback takes its place again after a restart."""
        if stored.queue not in self.acd.queues:
            log.warning("stored callback %s is for queue %r, no longer configured",
                        stored.call_id, stored.queue)  # fmt: skip
            return
        if not self.retries.restored(stored):
            return
        entry = self.acd.enter(stored.call_id, stored.queue, stored.caller, stored.entered,
                               stored.priority, stored.skills)  # fmt: skip
        entry.callback, entry.variables = True, dict(stored.variables)
        entry.tries, entry.not_before = stored.tries, stored.next_try if stored.tries else 0.0

    def _overflow(self, entry: Waiting) -> None:
        worker = self._workers.get(entry.call_id)
        target = self.settings.queues[entry.queue].overflow
        outcome = "overflowed" if target else "timeout"
        if worker is not None and target:
            worker.send(QueueTransfer(entry.call_id, target))
        elif worker is not None:
            worker.send(QueueHangup(entry.call_id))
        self._caller_gone(entry.call_id, outcome)

    def _changed(self, agent: Agent) -> Agent:
        self._wake.set()
        self._save(agent)
        self.cti.publish("agent.state", **self._agent_doc(agent, self._clock()))
        return agent

    def _save_turn(self, queue: str) -> None:
        """Round-robin's memory (the agent last offered a call) outlives a restart; written
        after the offer went out, so it costs the agent's phone no time."""
        if self._turns is not None and self.settings.queues[queue].strategy == "round-robin":
            self._turns.put(queue, self.acd.last_offered[queue])

    def _save(self, agent: Agent) -> None:
        """Write the agent when what a restart restores changed (ringing, talking and
        wrap-up come back as available), with its change for the state log in the same
        commit; other changes go to the log just after this step, so an offer never
        waits for an fsync (appliance/contact/state_log.py)."""
        if self._store is None or self._state is None or self._log is None:
            return
        durable = ("available" if agent.state in RESTORED_AVAILABLE else agent.state,
                   agent.reason)  # fmt: skip
        change = self._log.change(agent)
        if self._saved.get(agent.number) == durable:
            if change is not None:
                self._log.stage(change)
            return
        with self._store.write() as txn:
            self._state.put_in(txn, agent.number, {**agent.record(), "state": durable[0]})
            self._log.write_in(txn, change)
        self._saved[agent.number] = durable

    def _publish_call(self, event: str, call_id: str, entry: Waiting | None = None,
                      **data: Any) -> None:  # fmt: skip
        entry = entry or self.acd.find(call_id)
        if entry is not None:
            data.update(queue=entry.queue, caller=entry.caller, priority=entry.priority,
                        position=self.acd.position(call_id) or None,
                        variables=entry.variables)  # fmt: skip
        self.cti.publish(event, call_id=call_id, **data)

    @staticmethod
    def _agent_doc(agent: Agent, now: float) -> dict[str, Any]:
        return {"agent": agent.number, "state": agent.state, "reason": agent.reason or None,
                "for_s": round(max(0.0, now - agent.since), 1), "registered": agent.registered,
                "calls": agent.calls}  # fmt: skip


def wanted_skills(call_id: str, text: str | None) -> dict[str, int] | None:
    """The skills an IVR flow's ``skills`` variable asks for (``billing:4,english:3``);
    None (the queue's own) when there is none or it is malformed (logged)."""
    if not text:
        return None
    try:
        return parse_skills(text)
    except ValueError as err:
        log.warning("call %s: flow variable skills=%r ignored (error_id queue-skills-invalid): %s",
                    call_id, text, err)  # fmt: skip
        return None
