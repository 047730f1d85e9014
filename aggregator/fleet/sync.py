"""The fleet on the sync link: SIM status and refused calls in, commands out and answered."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import sqlalchemy as sa
from prometheus_client import Counter

from aggregator.fleet import store as fleet
from aggregator.fleet.push import CommandPusher
from aggregator.refusals import Refusals
from aggregator.store.schema import commands
from drivers.sync.protocol import Command, CommandResult, Hello, Message, SimStatus
from drivers.sync.records import command_detail, parse_refused_call, parse_sim, parse_switch

log = logging.getLogger(__name__)


class FleetSync:
    """Handlers, hooks and the command pusher of the fleet; on the ingest worker thread."""

    def __init__(
        self, engine: Callable[[], sa.Engine], refusals: Refusals, sims_refused: Counter
    ) -> None:
        self._engine = engine
        self._refusals = refusals
        self._sims_refused = sims_refused
        self.commands = CommandPusher(engine)

    def hello(self, conn: sa.Connection, site_id: str, _hello: Hello) -> list[Message]:
        """A new session: the site's DNC row, and every command it has not answered."""
        fleet.ensure_dnc_row(conn, site_id)
        pending = conn.execute(
            sa.select(commands)
            .where(commands.c.site_id == site_id, commands.c.done_ms.is_(None))
            .order_by(commands.c.created_ms)
        ).all()
        self.commands.on_hello(site_id, [c.command_id for c in pending])
        return [Command(c.command_id, c.kind, dict(c.args)) for c in pending]

    def command_result(self, site_id: str, result: Message) -> list[Message]:
        """``command-result``: the command is done, with its outcome."""
        assert isinstance(result, CommandResult)
        with self._engine().begin() as conn:
            conn.execute(
                sa.update(commands)
                .where(commands.c.command_id == result.command_id, commands.c.site_id == site_id)
                .values(
                    done_ms=int(time.time() * 1000),
                    ok=result.ok,
                    detail=command_detail(result.detail),
                )
            )
        return []

    def sim_status(self, site_id: str, status: Message) -> list[Message]:
        """``sim-status``: the site's SIMs and switches, each record checked alone."""
        assert isinstance(status, SimStatus)
        sims = self._refusals.valid(site_id, "sim", parse_sim, status.sims)
        switches = self._refusals.valid(site_id, "sim", parse_switch, status.switches)
        with self._engine().begin() as conn:
            result = fleet.store_status(
                conn, site_id, [s.doc for s in sims], [s.doc for s in switches]
            )
        for iccid, owner in result.refused.items():
            self._sims_refused.labels(site=site_id, reason=fleet.OWNED_ELSEWHERE).inc()
            log.warning(
                "SIM record refused: another site holds this SIM; move it at HQ if it moved",
                extra={"error_id": fleet.OWNED_ELSEWHERE, "site": site_id,
                       "iccid": iccid, "owner": owner},
            )  # fmt: skip
        return []

    def store_refusals(self, site_id: str, records: list[tuple[int, bytes]]) -> None:
        """A ``compliance-batch``: the refused calls that parse are stored."""
        valid = self._refusals.valid(site_id, "compliance", _checked, records)
        if valid:
            with self._engine().begin() as conn:
                fleet.store_refusals(conn, site_id, valid)


def _checked(entry: tuple[int, bytes]) -> tuple[int, bytes]:
    """A ``[seq, bytes]`` entry, kept when its refused call parses."""
    parse_refused_call(entry[1])
    return entry
