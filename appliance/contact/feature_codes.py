"""Agents log in, log out, pause and resume from their own phone by feature code.

``contact.agent_codes`` (off unless configured; ``appliance.contact.agent_codes``) names
the codes. The caller's authenticated extension is the agent; the action is the one the
API runs (``ContactService``), so the CTI ``agent.state`` event, the state log and LMDB
follow as for the API. A done action routes the call to the media workers'
``announce-<prompt>`` (the caller hears the confirmation, then the worker hangs up;
without a prompt the call is answered 603, the phone's display says done); a refused
one is answered with a SIP error named by its error id (``SIP_STATUS``), logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from appliance.contact.acd import AcdError, Agent
from appliance.contact.agent_codes import Action, AgentCodes, AgentRequest, parse
from appliance.contact.service import ContactService
from appliance.pbx.deciders import RouteQuery
from appliance.pbx.dialplan import Decision

log = logging.getLogger(__name__)

DONE = 603
SIP_STATUS = {"agent-not-found": 404, "pause-reason-unknown": 404, "agent-busy": 486,
              "agent-not-paused": 409}  # fmt: skip


class AgentCodeDecider:
    """Runs an agent's feature code and answers with the confirmation or a SIP error."""

    name = "contact-agent-codes"
    # Agent codes start with ``*``: never an extension's, a ring group's or an outbound
    # route's number; calls from trunks pass unchanged.
    keeps_local_calls = True
    keeps_trunk_calls = True

    def __init__(self, codes: AgentCodes, service: ContactService) -> None:
        self._codes = codes
        self._service = service

    def decide(self, query: RouteQuery, decision: Decision | None) -> Decision | None:
        """The confirmation (or a refusal) for an agent code; anything else unchanged."""
        if decision is not None or query.from_peer or query.from_trunk:
            return decision
        request = parse(self._codes, query.dialled)
        if request is None:
            return decision
        return self.answer(request, query.caller, query)

    def answer(self, request: AgentRequest, agent: str, query: RouteQuery) -> Decision:
        """Run ``request`` for ``agent``: the confirmation, or the refusal's SIP error."""
        try:
            done = self._run(request, agent)
        except AcdError as err:
            log.warning("agent code %s from %s refused: %s", query.dialled, agent, err,
                        extra={"error_id": err.error_id, "call_id": query.call_id})  # fmt: skip
            return Decision("reject", code=SIP_STATUS[err.error_id], reason=err.error_id)
        log.info("agent %s by feature code %s: %s", done.number, query.dialled, done.state)
        if self._codes.prompt is None:
            return Decision("reject", code=DONE, reason=f"agent-{request.action}")
        return Decision("media", uri=f"announce-{self._codes.prompt}",
                        route=f"agent:{request.action}", recording="never")  # fmt: skip

    def _run(self, request: AgentRequest, caller: str) -> Agent:
        if request.action == "pause" and request.reason is None:
            raise AcdError("pause-reason-unknown", "no pause reason for that digit")
        actions: dict[Action, Callable[[], Agent]] = {
            "login": lambda: self._service.login(caller),
            "logout": lambda: self._service.logout(caller),
            "pause": lambda: self._service.pause(caller, request.reason or ""),
            "resume": lambda: self._service.resume(caller),
        }
        return actions[request.action]()
