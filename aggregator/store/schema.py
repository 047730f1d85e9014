"""Tables of the aggregator's store. Times are UTC epoch milliseconds.

``cdr_rollup`` holds per-hour counters kept up to date at ingest (only for CDRs that
were newly inserted, so redelivery never double-counts) and ``cdr_rollup_daily`` the
same per UTC day; reports read the rollups, not the CDR table, which keeps a month's
summary fast at any table size. ``queue_rollup`` and ``queue_rollup_daily`` do the same
per queue for the queued calls, and ``agent_rollup`` per agent who answered them
(aggregator/store/queue_rollup.py).

The schema changes only through a migration (aggregator/store/migrate.py).

``directory_*`` hold the routing directory (aggregator/directory); ``snapshots`` the
latest compiled table per site and topic, ``snapshot_updates`` the recent changes
between consecutive versions, from which a connected site is sent an ``update``.

``sims``, ``sim_usage_days`` and ``sim_switches`` hold the SIM fleet as the sites report
it; ``compliance_events`` the outbound calls sites refused; ``dnc_numbers`` the company
do-not-call list, pushed to every site as the ``dnc`` snapshot topic (aggregator/fleet).
``recordings`` the recordings held (file by content hash under the recordings folder);
``recordings_expired`` those retention deleted, so they answer "expired", not "unknown".
``sms_messages`` the SMS sites received and the outcome of those they sent
(aggregator/store/sms.py). ``hotel_postings`` and ``hotel_wake_ups`` the charge postings
hotel sites' PMS answered and their wake-up outcomes (aggregator/hotel).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

sites = sa.Table(
    "sites",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("first_seen_ms", sa.BigInteger, nullable=False),
    sa.Column("last_seen_ms", sa.BigInteger, nullable=False),
    sa.Column("software", sa.String(64), nullable=False, server_default=""),
    sa.Column("backlog_cdr", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("cdrs_received", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("health", sa.JSON, nullable=True),
)

# On PostgreSQL ``cdrs`` is partitioned by month of ``started_ms`` and its keys hold
# ``started_ms``: primary key (id, started_ms), ``uq_cdrs_site_cdr`` (site_id, cdr_id,
# started_ms) (aggregator/store/partitions.py, revision 0007). SQLite has the table below.
cdrs = sa.Table(
    "cdrs",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("site_id", sa.String(64), nullable=False),
    sa.Column("cdr_id", sa.String(64), nullable=False),
    sa.Column("conversation_id", sa.String(64)),
    sa.Column("direction", sa.String(16), nullable=False, server_default=""),
    sa.Column("caller_number", sa.String(64), nullable=False, server_default=""),
    sa.Column("caller_extension", sa.String(32), nullable=False, server_default=""),
    sa.Column("caller_name", sa.String(128), nullable=False, server_default=""),
    sa.Column("callee_number", sa.String(64), nullable=False, server_default=""),
    sa.Column("callee_extension", sa.String(32), nullable=False, server_default=""),
    sa.Column("callee_name", sa.String(128), nullable=False, server_default=""),
    sa.Column("trunk", sa.String(64), nullable=False, server_default=""),
    sa.Column("started_ms", sa.BigInteger, nullable=False),
    sa.Column("answered_ms", sa.BigInteger),
    sa.Column("ended_ms", sa.BigInteger),
    sa.Column("duration_s", sa.Float, nullable=False, server_default="0"),
    sa.Column("billable_s", sa.Float, nullable=False, server_default="0"),
    sa.Column("disposition", sa.String(16), nullable=False),
    sa.Column("hangup_cause", sa.String(64), nullable=False, server_default=""),
    sa.Column("hangup_side", sa.String(16), nullable=False, server_default=""),
    sa.Column("recording_id", sa.String(64)),
    sa.Column("doc", sa.LargeBinary, nullable=False),
    sa.Column("received_ms", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("site_id", "cdr_id", name="uq_cdrs_site_cdr"),
    sa.Index("ix_cdrs_site_started", "site_id", "started_ms", "id"),
    sa.Index("ix_cdrs_started", "started_ms", "id"),
    sa.Index("ix_cdrs_caller_number", "caller_number", "started_ms"),
    sa.Index("ix_cdrs_callee_number", "callee_number", "started_ms"),
)

cdr_rollup = sa.Table(
    "cdr_rollup",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("hour_ms", sa.BigInteger, primary_key=True),
    sa.Column("dim", sa.String(16), primary_key=True),
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("calls", sa.BigInteger, nullable=False),
    sa.Column("answered", sa.BigInteger, nullable=False),
    sa.Column("duration_s", sa.Float, nullable=False),
    sa.Column("billable_s", sa.Float, nullable=False),
    sa.Index("ix_rollup_dim_hour", "dim", "hour_ms"),
    # The site rows alone, with their figures (revision 0012): the summaries read them
    # from this index only, not from the table's pages, which the far more numerous
    # extension and trunk rows of the same hours fill.
    sa.Index(
        "ix_rollup_site_hour",
        "hour_ms",
        "site_id",
        postgresql_include=["calls", "answered", "duration_s", "billable_s"],
        postgresql_where=sa.text("dim = 'site'"),
        sqlite_where=sa.text("dim = 'site'"),
    ),
)

cdr_rollup_daily = sa.Table(
    "cdr_rollup_daily",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("day_ms", sa.BigInteger, primary_key=True),
    sa.Column("dim", sa.String(16), primary_key=True),
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("calls", sa.BigInteger, nullable=False),
    sa.Column("answered", sa.BigInteger, nullable=False),
    sa.Column("duration_s", sa.Float, nullable=False),
    sa.Column("billable_s", sa.Float, nullable=False),
    sa.Index("ix_rollup_daily_dim_day", "dim", "day_ms"),
)


# Answered calls counted by wait, in seconds: 0-5, 5-10, ... and 120 or more
# (aggregator/store/queue_rollup.py, WAIT_BUCKETS).
ANSWER_TIME_COLUMNS = ("answered_0_5", "answered_5_10", "answered_10_20", "answered_20_30",
                       "answered_30_60", "answered_60_120", "answered_120_up")  # fmt: skip


def _queue_rollup(name: str, period: str, index: str, *keys: sa.Column[str]) -> sa.Table:
    """A per-queue rollup table: counts, sums of wait and talk, and the longest wait."""
    counts = ("offered", "answered", "abandoned", "overflowed", "timeout", "callback",
              "interrupted", "sl_met")  # fmt: skip
    return sa.Table(
        name,
        metadata,
        sa.Column("site_id", sa.String(64), primary_key=True),
        *keys,
        sa.Column(period, sa.BigInteger, primary_key=True),
        sa.Column("queue", sa.String(64), primary_key=True),
        *(sa.Column(count, sa.BigInteger, nullable=False) for count in counts),
        sa.Column("wait_s", sa.Float, nullable=False),
        sa.Column("talk_s", sa.Float, nullable=False),
        sa.Column("max_wait_s", sa.Float, nullable=False),
        # Answered calls by wait (aggregator/store/queue_rollup.py, WAIT_BUCKETS).
        *(
            sa.Column(name, sa.BigInteger, nullable=False, server_default="0")
            for name in ANSWER_TIME_COLUMNS
        ),
        sa.Index(index, period, "site_id"),
    )


queue_rollup = _queue_rollup("queue_rollup", "hour_ms", "ix_queue_rollup_hour")
queue_rollup_daily = _queue_rollup("queue_rollup_daily", "day_ms", "ix_queue_rollup_daily_day")
# Per site, its *own* local day and queue (aggregator/store/queue_local.py): ``day`` is the
# local date as days since 1970-01-01, in the zone ``tz`` the directory gave the site when
# the calls were stored. ``queue_sites`` has a row for every site with queued calls: the
# zone its local-day rows are kept in ("UTC": none) and from which local day on they are
# complete, so the queue report knows which sites may read them (aggregator/queues/report.py).
queue_rollup_local = _queue_rollup(
    "queue_rollup_local",
    "day",
    "ix_queue_rollup_local_day",
    sa.Column("tz", sa.String(64), primary_key=True),
)
queue_sites = sa.Table(
    "queue_sites",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("tz", sa.String(64), nullable=False),
    sa.Column("since_day", sa.BigInteger, nullable=False),
)


# Each queued call that was not answered (abandoned, overflowed, timeout, callback,
# interrupted), kept at ingest with the queue rollups: the lost-calls list reads it, and
# looks up what followed through the CDRs' number indexes (aggregator/queues/lost.py).
queue_unanswered = sa.Table(
    "queue_unanswered",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("cdr_id", sa.String(64), primary_key=True),
    sa.Column("started_ms", sa.BigInteger, nullable=False),
    sa.Column("caller_number", sa.String(64), nullable=False),
    sa.Column("queue", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("wait_s", sa.Float, nullable=False),
    # The caller heard the callback offer during this call (and did not take it).
    sa.Column("callback_offered", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_queue_unanswered_started", "started_ms", "site_id", "cdr_id"),
    sa.Index("ix_queue_unanswered_caller", "site_id", "caller_number", "started_ms"),
)

# Each callback a caller took (by the Call-ID of the queued call it left), its tries and
# how it ended, kept at ingest from the queued call's and the call backs' CDRs
# (aggregator/store/queue_callbacks.py); the lost-calls list reads it.
queue_callbacks = sa.Table(
    "queue_callbacks",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("call_id", sa.String(256), primary_key=True),
    sa.Column("caller", sa.String(64), nullable=False),
    sa.Column("started_ms", sa.BigInteger, nullable=False),
    sa.Column("tries", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("answered_ms", sa.BigInteger),
    sa.Index("ix_queue_callbacks_caller", "site_id", "caller", "started_ms"),
)

agent_rollup = sa.Table(
    "agent_rollup",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("hour_ms", sa.BigInteger, primary_key=True),
    sa.Column("agent", sa.String(64), primary_key=True),
    sa.Column("answered", sa.BigInteger, nullable=False),
    sa.Column("talk_s", sa.Float, nullable=False),
    sa.Index("ix_agent_rollup_hour", "hour_ms", "site_id"),
)

# The agent state log (aggregator/queues/agent_sync.py): one row per change a site sent,
# stored once by (site, the site's outbox sequence).
agent_states = sa.Table(
    "agent_states",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("agent", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False, server_default=""),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Column("registered", sa.Boolean, nullable=False),
    sa.Column("received_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_agent_states_agent_at", "site_id", "agent", "at_ms"),
    sa.Index("ix_agent_states_at", "at_ms"),
)

rejected_records = sa.Table(
    "rejected_records",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("site_id", sa.String(64), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.String(256), nullable=False),
    sa.Column("raw", sa.LargeBinary, nullable=False),
    sa.Column("received_ms", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("site_id", "seq", name="uq_rejected_site_seq"),
)

recordings = sa.Table(
    "recordings",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("recording_id", sa.String(64), primary_key=True),
    sa.Column("cdr_id", sa.String(64)),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("path", sa.String(512), nullable=False),
    sa.Column("meta", sa.JSON, nullable=True),
    sa.Column("stored_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_recordings_stored", "stored_ms"),
    sa.Index("ix_recordings_sha256", "sha256"),
)

recordings_expired = sa.Table(
    "recordings_expired",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("recording_id", sa.String(64), primary_key=True),
    sa.Column("cdr_id", sa.String(64)),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("stored_ms", sa.BigInteger, nullable=False),
    sa.Column("expired_ms", sa.BigInteger, nullable=False),
)

snapshots = sa.Table(
    "snapshots",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("topic", sa.String(64), primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("data", sa.JSON, nullable=True),
    sa.Column("applied_version", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("refused_reason", sa.String(512), nullable=False, server_default=""),
)

commands = sa.Table(
    "commands",
    metadata,
    sa.Column("command_id", sa.String(64), primary_key=True),
    sa.Column("site_id", sa.String(64), nullable=False, index=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("args", sa.JSON, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("done_ms", sa.BigInteger),
    sa.Column("ok", sa.Boolean),
    sa.Column("detail", sa.String(512), nullable=False, server_default=""),
)

directory_plan = sa.Table(
    "directory_plan",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("flat", sa.Boolean, nullable=False),
    sa.Column("site_prefix", sa.String(2), nullable=False, server_default=""),
    sa.Column("revision", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("updated_ms", sa.BigInteger, nullable=False, server_default="0"),
)

directory_sites = sa.Table(
    "directory_sites",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False, server_default=""),
    sa.Column("profile", sa.String(16), nullable=False),
    sa.Column("sip_address", sa.String(255), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("code", sa.String(4), nullable=True),
    sa.Column("region", sa.String(64), nullable=True),
    sa.Column("extensions", sa.JSON, nullable=False),
    sa.Column("ranges", sa.JSON, nullable=False),
)

directory_trunks = sa.Table(
    "directory_trunks",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("site", sa.String(64), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("numbers", sa.JSON, nullable=False),
    sa.Column("caller_id", sa.String(16), nullable=True),
)

directory_rules = sa.Table(
    "directory_rules",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("min_length", sa.Integer, nullable=False),
    sa.Column("max_length", sa.Integer, nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("sites", sa.JSON, nullable=False),
    sa.Column("windows", sa.JSON, nullable=False),
    sa.Column("targets", sa.JSON, nullable=False),
)

snapshot_updates = sa.Table(
    "snapshot_updates",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("topic", sa.String(64), primary_key=True),
    sa.Column("version", sa.BigInteger, primary_key=True),
    sa.Column("base_version", sa.BigInteger, nullable=False),
    sa.Column("changes", sa.JSON, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
)

sims = sa.Table(
    "sims",
    metadata,
    sa.Column("iccid", sa.String(32), primary_key=True),
    sa.Column("site_id", sa.String(64), nullable=False, index=True),
    sa.Column("channel", sa.String(64), nullable=False, server_default=""),
    sa.Column("modem", sa.String(64), nullable=False, server_default=""),
    sa.Column("slot", sa.Integer, nullable=False, server_default="0"),
    sa.Column("number", sa.String(32), nullable=False, server_default=""),
    sa.Column("operator", sa.String(64), nullable=False, server_default=""),
    sa.Column("imsi", sa.String(32), nullable=False, server_default=""),
    sa.Column("signal_dbm", sa.Integer, nullable=True),
    sa.Column("registered", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False, server_default=""),
    sa.Column("needs_review", sa.String(256), nullable=False, server_default=""),
    sa.Column("sim_group", sa.String(64), nullable=False, server_default="default"),
    sa.Column("limits", sa.JSON, nullable=False),
    sa.Column("usage", sa.JSON, nullable=False),
    sa.Column("last_switch", sa.JSON, nullable=True),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
)

sim_usage_days = sa.Table(
    "sim_usage_days",
    metadata,
    sa.Column("iccid", sa.String(32), primary_key=True),
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("site_id", sa.String(64), nullable=False),
    sa.Column("calls", sa.BigInteger, nullable=False),
    sa.Column("answered", sa.BigInteger, nullable=False),
    sa.Column("connected_s", sa.Float, nullable=False),
    sa.Column("effective", sa.BigInteger, nullable=False),
    sa.Index("ix_sim_usage_day", "day"),
)

sim_switches = sa.Table(
    "sim_switches",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("switch_id", sa.String(64), primary_key=True),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("modem", sa.String(64), nullable=False),
    sa.Column("from_slot", sa.Integer, nullable=False),
    sa.Column("to_slot", sa.Integer, nullable=False),
    sa.Column("from_iccid", sa.String(32), nullable=False),
    sa.Column("to_iccid", sa.String(32), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
)

compliance_events = sa.Table(
    "compliance_events",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("at_ms", sa.BigInteger, nullable=False, index=True),
    sa.Column("destination", sa.String(64), nullable=False),
    sa.Column("campaign", sa.String(64), nullable=True),
    sa.Column("error_id", sa.String(64), nullable=False),
    sa.Column("message", sa.String(512), nullable=False),
)

dnc_numbers = sa.Table(
    "dnc_numbers",
    metadata,
    sa.Column("number", sa.String(32), primary_key=True),
    sa.Column("reason", sa.String(256), nullable=False, server_default=""),
    sa.Column("added_ms", sa.BigInteger, nullable=False),
)

sms_messages = sa.Table(
    "sms_messages",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("sms_id", sa.String(64), primary_key=True),
    sa.Column("direction", sa.String(3), nullable=False),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Column("channel", sa.String(64), nullable=False, server_default=""),
    sa.Column("iccid", sa.String(32), nullable=False, server_default=""),
    sa.Column("sim_number", sa.String(32), nullable=False, server_default=""),
    sa.Column("number", sa.String(64), nullable=False, server_default=""),
    sa.Column("text", sa.Text, nullable=False, server_default=""),
    sa.Column("parts", sa.Integer, nullable=False, server_default="1"),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(512), nullable=False, server_default=""),
    sa.Column("refs", sa.JSON, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("received_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_sms_at", "at_ms"),
    sa.Index("ix_sms_iccid", "iccid", "direction"),
)

# Enrolment (aggregator/enrolment): one-time codes by site (only their SHA-256 is kept),
# and the CurveZMQ public keys sites enrolled with; ZAP admits these as well as the YAML's.
enrolment_codes = sa.Table(
    "enrolment_codes",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("code_hash", sa.String(64), nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("expires_ms", sa.BigInteger, nullable=False),
    sa.Column("used_ms", sa.BigInteger),
    sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
)

site_keys = sa.Table(
    "site_keys",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("public_key", sa.String(40), nullable=False, unique=True),
    sa.Column("enrolled_ms", sa.BigInteger, nullable=False),
    sa.Column("revoked_ms", sa.BigInteger),
)

# The newest doctor report of each site (aggregator/doctor): ``at_ms`` is when the site
# made it; an older report never replaces a newer one.
doctor_reports = sa.Table(
    "doctor_reports",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Column("received_ms", sa.BigInteger, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("findings", sa.JSON, nullable=False),
)

# The hotel (aggregator/hotel): postings the PMS finally answered and wake-up outcomes,
# by (site, record id) as the sites send them (drivers/sync/hotel.py).
hotel_postings = sa.Table(
    "hotel_postings",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("posting_id", sa.String(64), primary_key=True),
    sa.Column("room", sa.String(8), nullable=False),
    sa.Column("posting_number", sa.Integer, nullable=False),
    sa.Column("posting_type", sa.String(1), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=True),
    sa.Column("duration_s", sa.Integer, nullable=True),
    sa.Column("dialled", sa.String(20), nullable=False, server_default=""),
    sa.Column("article", sa.String(16), nullable=False, server_default=""),
    sa.Column("quantity", sa.Integer, nullable=True),
    sa.Column("fias_date", sa.String(6), nullable=False, server_default=""),
    sa.Column("fias_time", sa.String(6), nullable=False, server_default=""),
    sa.Column("answer", sa.String(2), nullable=False),
    sa.Column("answer_text", sa.String(256), nullable=False, server_default=""),
    sa.Column("queued_ms", sa.BigInteger, nullable=False),
    sa.Column("answered_ms", sa.BigInteger, nullable=False),
    sa.Column("business_date", sa.String(10), nullable=False, server_default=""),
    sa.Column("received_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_hotel_postings_answered", "answered_ms"),
    sa.Index("ix_hotel_postings_room", "site_id", "room"),
)

hotel_wake_ups = sa.Table(
    "hotel_wake_ups",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("outcome_id", sa.String(64), primary_key=True),
    sa.Column("room", sa.String(8), nullable=False),
    sa.Column("fias_date", sa.String(6), nullable=False, server_default=""),
    sa.Column("fias_time", sa.String(6), nullable=False, server_default=""),
    sa.Column("due_ms", sa.BigInteger, nullable=True),
    sa.Column("result", sa.String(2), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("front_desk_alerted", sa.Boolean, nullable=False),
    sa.Column("source", sa.String(8), nullable=False),
    sa.Column("ended_ms", sa.BigInteger, nullable=False),
    sa.Column("received_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_hotel_wake_ups_ended", "ended_ms"),
    sa.Index("ix_hotel_wake_ups_room", "site_id", "room"),
)
