"""``doctor-report`` from a site: checked alone, kept when newer than the one held."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import sqlalchemy as sa

from aggregator.doctor.store import store_report
from aggregator.refusals import Refusals
from drivers.sync.doctor_report import parse_doctor_report
from drivers.sync.protocol import DoctorReportMessage, ErrorReply, Message
from drivers.sync.records import RecordError

log = logging.getLogger(__name__)


class DoctorSync:
    """The handler of ``doctor-report``; runs on the ingest worker thread."""

    def __init__(
        self,
        engine: Callable[[], sa.Engine],
        refusals: Refusals,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._refusals = refusals
        self._clock = clock

    def report(self, site_id: str, message: Message) -> list[Message]:
        """Store the site's report if it is valid and newer; refuse it by error id if not."""
        assert isinstance(message, DoctorReportMessage)
        now = self._clock()
        try:
            report = parse_doctor_report(message.report, now=now)
        except RecordError as err:
            self._refusals.refused(site_id, "doctor", err.error_id, err.message)
            return [ErrorReply(err.error_id, err.message, DoctorReportMessage.TYPE)]
        with self._engine().begin() as conn:
            kept = store_report(conn, site_id, report, int(now * 1000))
        if not kept:
            log.info("older doctor report ignored", extra={"site": site_id, "at": report.at})
        return []
