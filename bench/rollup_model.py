"""The rollups a month of generated queued calls leaves at HQ, without storing the calls.

The summaries and the queue report read only the rollups (aggregator/reports.py,
aggregator/queues/report.py), whose rows number sites x hours x keys whatever the calls
number. 100 million stored CDRs would need about 84 GB (836 bytes each with their
indexes); this module writes inside PostgreSQL the rollup rows those calls give, in
seconds, and can store the same calls through the real ingest at a smaller scale so the
two can be compared (``ingest_calls``, ``rollup_differences``).

The model (every figure a function of the call's number, so the sums are exact):

- call ``i`` of ``cdrs`` belongs to site ``i % sites``; the site's ``j``-th call
  (``j = i // sites``) starts in hour ``j % hours`` of the range and is the ``k``-th
  call of that hour (``k = j // hours``), ``k * 7919 % 3600`` seconds after the hour;
- every call comes in on trunk ``t{k % 4}`` and passes queue ``q{k // 4 % 4}``; its
  outcome is the ``k % 10``-th of 6 answered, 2 abandoned, 1 overflowed, 1 timeout; it
  waits ``k * 37 % 240 / 2`` seconds (0 to 119.5), and when answered talks
  ``30 + k * 53 % 300`` seconds with agent (extension) ``1{k // 16 % 50:03d}`` and
  meets the service level when it waited 20 s or less;
- an answered call's CDR is ``answered``, with the agent as callee extension; the
  others' are ``no-answer``. Duration is wait plus talk, billable time the talk.

A site and hour with ``K`` calls therefore holds calls ``k = 0 .. K-1``, and its rollup
rows are the sums over those; a month has at most four distinct ``K``, so the database
adds up a few thousand model calls per ``K`` and joins them to the sites' hours. The
hourly rows are written hour by hour, each site's with its extension and trunk rows, the
order ingest creates them in as the month goes by, so the table's pages mix them as they
do at HQ (rows written grouped by dimension would put a month's site rows on a few pages
and flatter the reports that read only those). Every site is placed in ``ZONE`` in the
routing directory, as the queue benchmark does.

``queue_unanswered`` (the lost-calls list) holds a row per call not answered, 4 in 10 of
the calls: those rows are written hour by hour too, each with the CDR id, start and
caller number the call's CDR carries (``Call.cdr``), so the rows equal ingest's. Not
generated: ``cdrs`` itself, which the lost-calls list reads only to look up, per line,
an answered call from or to the caller's number.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa

from aggregator.store.cdr_rows import parse_batch
from aggregator.store.cdrs import CdrStore
from aggregator.store.schema import directory_sites
from tests.sync_env import T0, make_cdr

MONTH_START_MS = 1_761_955_200_000  # 2025-11-01T00:00:00Z
ID_MS = int(T0 * 1000)  # a CDR's id carries ID_MS + its number (tests/sync_env.py, make_cdr)
HOUR_MS = 3_600_000
ZONE = "Europe/Berlin"
TRUNKS, QUEUES, AGENTS = 4, 4, 50
OUTCOMES = ("answered",) * 6 + ("abandoned", "abandoned", "overflowed", "timeout")
SERVICE_LEVEL_S = 20.0
BATCH = 5000
# The tables the model fills, each with its key columns (the rows are compared by them).
ROLLUPS = {
    "cdr_rollup": ("site_id", "hour_ms", "dim", "key"),
    "cdr_rollup_daily": ("site_id", "day_ms", "dim", "key"),
    "queue_rollup": ("site_id", "hour_ms", "queue"),
    "queue_rollup_daily": ("site_id", "day_ms", "queue"),
    "queue_rollup_local": ("site_id", "tz", "day", "queue"),
    "agent_rollup": ("site_id", "hour_ms", "agent"),
    "queue_sites": ("site_id",),
    "queue_unanswered": ("site_id", "cdr_id"),
}
UNANSWERED_INDEXES = (
    ("ix_queue_unanswered_started", "started_ms, site_id, cdr_id"),
    ("ix_queue_unanswered_caller", "site_id, caller_number, started_ms"),
)


@dataclass(frozen=True)
class Model:
    """How many calls, over how many sites and hours from ``start_ms``."""

    cdrs: int
    sites: int = 20
    hours: int = 720
    start_ms: int = MONTH_START_MS

    def site_ids(self) -> list[str]:
        return [f"site-{s}" for s in range(self.sites)]


@dataclass(frozen=True)
class Call:
    """Call ``k`` of a site's hour, as the model makes it."""

    k: int

    @property
    def outcome(self) -> str:
        return OUTCOMES[self.k % 10]

    @property
    def answered(self) -> bool:
        return self.outcome == "answered"

    @property
    def wait_s(self) -> float:
        return self.k * 37 % 240 / 2

    @property
    def talk_s(self) -> float:
        return float(30 + self.k * 53 % 300) if self.answered else 0.0

    @property
    def agent(self) -> str:
        return f"1{self.k // 16 % AGENTS:03d}" if self.answered else ""

    def cdr(self, n: int, site: int, start_s: float) -> bytes:
        """The CDR document a site would send for this call (numbered ``n``)."""
        end = start_s + self.wait_s + self.talk_s
        variables = {
            "queue": f"q{self.k // TRUNKS % QUEUES}",
            "queue_outcome": self.outcome,
            "queue_entered": f"{start_s:.3f}",
            "queue_wait_s": f"{self.wait_s:.1f}",
        }
        if self.answered:
            met = self.wait_s <= SERVICE_LEVEL_S
            variables |= {"queue_agent": self.agent, "queue_sl_met": str(met).lower()}
        return make_cdr(
            n,
            direction="inbound",
            caller={"number": f"+49170{self.k * 7919 % 100_000:05d}", "extension": None,
                    "name": ""},
            callee={"number": "700", "extension": self.agent or None, "name": ""},
            trunk=f"t{self.k % TRUNKS}",
            start=start_s,
            answer=start_s if self.answered else None,
            end=end,
            duration_s=end - start_s,
            billable_s=self.talk_s,
            disposition="answered" if self.answered else "no-answer",
            variables=variables,
            call_id=f"model-{site}-{n}@bench",
        )  # fmt: skip


def site_calls(model: Model, site: int) -> Iterator[tuple[int, bytes]]:
    """The site's calls in the order it makes them: (call number, CDR document)."""
    for i in range(site, model.cdrs, model.sites):
        j = i // model.sites
        hour, k = j % model.hours, j // model.hours
        start_ms = model.start_ms + hour * HOUR_MS + k * 7919 % 3600 * 1000
        yield i, Call(k).cdr(i, site, start_ms / 1000)


def place_sites(conn: sa.Connection, model: Model) -> None:
    """Put every site of the model in ``ZONE`` in the routing directory."""
    conn.execute(
        directory_sites.insert(),
        [{"id": site, "profile": "branch", "sip_address": f"10.1.{n // 250}.{n % 250 + 1}",
          "timezone": ZONE, "extensions": [], "ranges": []}
         for n, site in enumerate(model.site_ids())],
    )  # fmt: skip


def ingest_calls(engine: sa.Engine, model: Model) -> None:
    """Store the model's calls through HQ's ingest (aggregator/store/cdrs.py), by batches
    of ``BATCH`` per site, after placing the sites."""
    with engine.begin() as conn:
        place_sites(conn, model)
    store = CdrStore(engine)
    for site, site_id in enumerate(model.site_ids()):
        batch: list[tuple[int, bytes]] = []
        for seq, raw in site_calls(model, site):
            batch.append((seq, raw))
            if len(batch) == BATCH:
                store.store_many([parse_batch(site_id, batch)])
                batch = []
        if batch:
            store.store_many([parse_batch(site_id, batch)])


def generate(engine: sa.Engine, model: Model) -> dict[str, int]:
    """Write the model's rollup rows (PostgreSQL); returns the rows per table."""
    with engine.begin() as conn:
        place_sites(conn, model)
        for statement in _statements(model):
            conn.exec_driver_sql(statement)
        _unanswered(conn, model)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
        return {
            table: int(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one())  # noqa: S608
            for table in ROLLUPS
        }


def _unanswered(conn: sa.Connection, model: Model) -> None:
    """The lost-calls rows, hour by hour; its indexes built after them (a month of rows
    kept up one by one would take most of the run)."""
    for name, _ in UNANSWERED_INDEXES:
        conn.exec_driver_sql(f"DROP INDEX {name}")
    for hour in range(model.hours):
        conn.exec_driver_sql(
            _UNANSWERED.format(hour_ms=model.start_ms + hour * HOUR_MS, h=hour, hours=model.hours,
                               sites=model.sites, id_ms=ID_MS, trunks=TRUNKS, queues=QUEUES,
                               outcomes=_OUTCOMES)
        )  # fmt: skip
    for name, columns in UNANSWERED_INDEXES:
        conn.exec_driver_sql(f"CREATE INDEX {name} ON queue_unanswered ({columns})")


def rollup_differences(a: sa.Engine, b: sa.Engine) -> dict[str, int]:
    """Per rollup table, how many rows differ between two databases (none: equal)."""
    return {
        table: len(set(_rows(a, table, keys)) ^ set(_rows(b, table, keys)))
        for table, keys in ROLLUPS.items()
    }


def _rows(engine: sa.Engine, table: str, keys: tuple[str, ...]) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        sql = f"SELECT * FROM {table} ORDER BY {', '.join(keys)}"  # noqa: S608
        return [tuple(row) for row in conn.exec_driver_sql(sql)]


# Calls per site (``n_s``), per site and hour (``k_count``); the model's calls per
# distinct ``k_count``, with their figures.
_CELLS = """CREATE TEMP TABLE model_cells ON COMMIT DROP AS
    SELECT 'site-' || s AS site_id, {start} + h * {hour} AS hour_ms,
           (n_s - h + {hours} - 1) / {hours} AS k_count
    FROM (SELECT s, ({n} - s + {sites} - 1) / {sites} AS n_s
          FROM generate_series(0::bigint, {sites} - 1) AS s) AS per_site,
         generate_series(0::bigint, {hours} - 1) AS h
    WHERE n_s > h"""
_CALLS = """CREATE TEMP TABLE model_calls ON COMMIT DROP AS
    SELECT k_count, 't' || mod(k, {trunks}) AS trunk, 'q' || mod(k / {trunks}, {queues}) AS queue,
           outcome, outcome = 'answered' AS answered, wait_s,
           CASE WHEN outcome = 'answered' THEN 30 + mod(k * 53, 300) ELSE 0 END::float8 AS talk_s,
           CASE WHEN outcome = 'answered' THEN '1' || lpad(mod(k / 16, {agents})::text, 3, '0')
                ELSE '' END AS agent
    FROM (SELECT DISTINCT k_count FROM model_cells) AS counts,
         generate_series(0::bigint, k_count - 1) AS k,
         LATERAL (SELECT (ARRAY[{outcomes}])[1 + mod(k, 10)] AS outcome,
                         mod(k * 37, 240) / 2.0::float8 AS wait_s) AS figures"""
_CDR_SUMS = """count(*), count(*) FILTER (WHERE answered), sum(wait_s + talk_s), sum(talk_s)"""
_CDR_ROLLUP = """INSERT INTO cdr_rollup
    SELECT site_id, hour_ms, dim, key, calls, answered, duration_s, billable_s
    FROM model_cells JOIN (
        SELECT k_count, 'site' AS dim, '' AS key, {sums} FROM model_calls GROUP BY 1
        UNION ALL SELECT k_count, 'extension', agent, {sums} FROM model_calls
                  WHERE agent <> '' GROUP BY 1, 3
        UNION ALL SELECT k_count, 'trunk', trunk, {sums} FROM model_calls GROUP BY 1, 3
    ) AS per_count (k_count, dim, key, calls, answered, duration_s, billable_s) USING (k_count)
    ORDER BY hour_ms, site_id"""
_CDR_DAILY = """INSERT INTO cdr_rollup_daily
    SELECT site_id, hour_ms / 86400000 * 86400000, dim, key, sum(calls), sum(answered),
           sum(duration_s), sum(billable_s)
    FROM cdr_rollup GROUP BY 1, 2, 3, 4"""
_BUCKET_LOWS = (0, 5, 10, 20, 30, 60, 120)  # aggregator/store/queue_rollup.py, WAIT_BUCKETS
_BUCKETS = ", ".join(
    f"count(*) FILTER (WHERE answered AND wait_s >= {low}"
    + ("" if high is None else f" AND wait_s < {high}")
    + ")"
    for low, high in zip(_BUCKET_LOWS, [*_BUCKET_LOWS[1:], None], strict=True)
)
_QUEUE_ROLLUP = """INSERT INTO queue_rollup
    SELECT site_id, hour_ms, queue, offered, answered, abandoned, overflowed, timeout,
           callback, interrupted, sl_met, wait_s, talk_s, max_wait_s, b0, b1, b2, b3, b4, b5, b6
    FROM model_cells JOIN (
        SELECT k_count, queue, count(*), count(*) FILTER (WHERE answered),
               count(*) FILTER (WHERE outcome = 'abandoned'),
               count(*) FILTER (WHERE outcome = 'overflowed'),
               count(*) FILTER (WHERE outcome = 'timeout'), 0, 0,
               count(*) FILTER (WHERE answered AND wait_s <= {sl}),
               coalesce(sum(wait_s) FILTER (WHERE answered), 0),
               coalesce(sum(talk_s) FILTER (WHERE answered), 0), max(wait_s), {buckets}
        FROM model_calls GROUP BY 1, 2
    ) AS per_count (k_count, queue, offered, answered, abandoned, overflowed, timeout,
                    callback, interrupted, sl_met, wait_s, talk_s, max_wait_s,
                    b0, b1, b2, b3, b4, b5, b6) USING (k_count)
    ORDER BY hour_ms, site_id"""
_QUEUE_SUMS = """sum(offered), sum(answered), sum(abandoned), sum(overflowed), sum(timeout),
    sum(callback), sum(interrupted), sum(sl_met), sum(wait_s), sum(talk_s), max(max_wait_s),
    sum(answered_0_5), sum(answered_5_10), sum(answered_10_20), sum(answered_20_30),
    sum(answered_30_60), sum(answered_60_120), sum(answered_120_up)"""
_QUEUE_DAILY = """INSERT INTO queue_rollup_daily
    SELECT site_id, hour_ms / 86400000 * 86400000, queue, {sums}
    FROM queue_rollup GROUP BY 1, 2, 3"""
_QUEUE_LOCAL = """INSERT INTO queue_rollup_local
    SELECT site_id, '{zone}',
           (to_timestamp(hour_ms / 1000.0) AT TIME ZONE '{zone}')::date - DATE '1970-01-01',
           queue, {sums}
    FROM queue_rollup GROUP BY 1, 3, 4"""
_QUEUE_SITES = """INSERT INTO queue_sites
    SELECT DISTINCT site_id, '{zone}', 0 FROM model_cells"""
_AGENT_ROLLUP = """INSERT INTO agent_rollup
    SELECT site_id, hour_ms, agent, answered, talk_s
    FROM model_cells JOIN (
        SELECT k_count, agent, count(*) AS answered, sum(talk_s) AS talk_s
        FROM model_calls WHERE answered GROUP BY 1, 2
    ) AS per_count USING (k_count)
    ORDER BY hour_ms, site_id"""


# The calls not answered of one hour's cells, in the site order ingest meets them: call
# ``k`` of site ``s`` in hour ``h`` is the model's call ``i = (k * hours + h) * sites + s``,
# and its CDR id the UUIDv7 of ``make_cdr(i)`` (ms ``id_ms + i``, rand_a 0, rand_b ``i``).
_UNANSWERED = """INSERT INTO queue_unanswered
    SELECT site_id, substr(ms, 1, 8) || '-' || substr(ms, 9, 4) || '-7000-'
                    || substr(b, 1, 4) || '-' || substr(b, 5, 12),
           hour_ms + mod(k * 7919, 3600) * 1000,
           '+49170' || lpad(mod(k * 7919, 100000)::text, 5, '0'),
           'q' || mod(k / {trunks}, {queues}), outcome, mod(k * 37, 240) / 2.0::float8, false
    FROM model_cells, generate_series(0::bigint, k_count - 1) AS k,
         LATERAL (SELECT (ARRAY[{outcomes}])[1 + mod(k, 10)] AS outcome,
                         (k * {hours} + {h}) * {sites} + substr(site_id, 6)::bigint AS i) AS c,
         LATERAL (SELECT lpad(to_hex({id_ms} + i), 12, '0') AS ms,
                         '8' || lpad(to_hex(i), 15, '0') AS b) AS id
    WHERE hour_ms = {hour_ms} AND mod(k, 10) >= 6
    ORDER BY substr(site_id, 6)::bigint, k"""
_OUTCOMES = ", ".join(f"'{o}'" for o in OUTCOMES)


def _statements(model: Model) -> list[str]:
    outcomes = _OUTCOMES
    return [
        _CELLS.format(start=model.start_ms, hour=HOUR_MS, hours=model.hours, n=model.cdrs,
                      sites=model.sites),
        _CALLS.format(trunks=TRUNKS, queues=QUEUES, agents=AGENTS, outcomes=outcomes),
        _CDR_ROLLUP.format(sums=_CDR_SUMS),
        _CDR_DAILY,
        _QUEUE_ROLLUP.format(sl=SERVICE_LEVEL_S, buckets=_BUCKETS),
        _QUEUE_DAILY.format(sums=_QUEUE_SUMS),
        _QUEUE_LOCAL.format(zone=ZONE, sums=_QUEUE_SUMS),
        _QUEUE_SITES.format(zone=ZONE),
        _AGENT_ROLLUP,
    ]  # fmt: skip
