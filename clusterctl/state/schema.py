"""The tables of the state store, as SQLAlchemy Core metadata.

Times are stored as UTC seconds since the epoch in a double column: SQLite has no
timezone-aware datetime type and PostgreSQL's `timestamptz` comes back as a different
Python type per driver, while a float compares, sorts and round-trips the same on both.
Convert at the edges (`datetime.fromtimestamp(ts, UTC)`).

The Alembic migrations under `migrations/versions/` create exactly these tables; a test
compares the two so they cannot drift. Change a table here *and* add a migration.
"""

from __future__ import annotations

from enum import StrEnum

import sqlalchemy as sa

# The newest migration this code knows. `Store.open` compares the store's
# `alembic_version` with it to skip importing Alembic when nothing needs doing.
HEAD_REVISION = "0007"


class RunStatus(StrEnum):
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    interrupted = "interrupted"


class StageStatus(StrEnum):
    pending = "pending"
    running = "running"
    done = "done"
    failed = "failed"
    skipped = "skipped"


class CheckStatus(StrEnum):
    pass_ = "pass"  # noqa: S105 - a check result, not a password
    warn = "warn"
    fail = "fail"


def _one_of(column: str, values: type[StrEnum]) -> sa.CheckConstraint:
    allowed = ", ".join(f"'{v.value}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=f"{column}_valid")


# SQLite only makes a rowid alias (and so a cheap, monotonic key) of an INTEGER primary key.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Epoch: sa.Double[float] = sa.Double()

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(64), nullable=False),  # provision | validate | burnin | ...
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", Epoch, nullable=False),
    sa.Column("finished_at", Epoch, nullable=True),
    sa.Column("inventory", sa.Text, nullable=True),
    sa.Column("args", sa.JSON, nullable=True),
    sa.Column("summary", sa.JSON, nullable=True),
    _one_of("status", RunStatus),
    sqlite_autoincrement=True,
)

node_stages = sa.Table(
    "node_stages",
    metadata,
    sa.Column("node", sa.String(255), primary_key=True),
    sa.Column("stage", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("run_id", BigId, sa.ForeignKey("runs.id"), nullable=True, index=True),
    # How many times the stage has been started on this node (incremented on `running`).
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("detail", sa.JSON, nullable=True),
    sa.Column("updated_at", Epoch, nullable=False),
    # The `stage.<status>` event written in the same transaction as this row.
    sa.Column("event_id", BigId, nullable=False),
    _one_of("status", StageStatus),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("ts", Epoch, nullable=False),
    sa.Column("run_id", BigId, sa.ForeignKey("runs.id"), nullable=True, index=True),
    sa.Column("node", sa.String(255), nullable=True, index=True),
    sa.Column("stage", sa.String(64), nullable=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("payload", sa.JSON, nullable=True),
    # AUTOINCREMENT: ids are never reused, even after the newest row is deleted.
    sqlite_autoincrement=True,
)

checks = sa.Table(
    "checks",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("run_id", BigId, sa.ForeignKey("runs.id"), nullable=True, index=True),
    sa.Column("node", sa.String(255), nullable=False),
    sa.Column("check", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text, nullable=True),
    sa.Column("data", sa.JSON, nullable=True),
    sa.Column("ts", Epoch, nullable=False),
    _one_of("status", CheckStatus),
    sa.Index(None, "node", "ts"),
    # The latest non-pass result per (node, check), read on every fleet page: the warn/fail rows, each
    # checked for a newer row of its check. Grouping every row instead took 1.5 s at 12,500 nodes after
    # one validate (550,000 rows), and grows with every check round.
    sa.Index(None, "status"),
    sa.Index(None, "node", "check", "id"),
    sqlite_autoincrement=True,
)

telemetry = sa.Table(
    "telemetry",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("node", sa.String(255), nullable=False),
    sa.Column("ts", Epoch, nullable=False),
    sa.Column("metric", sa.String(128), nullable=False),
    # NULL means "no reading": NaN and infinities are stored as NULL on both backends.
    sa.Column("value", sa.Double, nullable=True),
    sa.Column("labels", sa.JSON, nullable=True),
    sa.Index(None, "node", "metric", "ts"),
    # One metric across the fleet over a time window (the dashboard's "current" views).
    sa.Index(None, "metric", "ts"),
)

burnin_results = sa.Table(
    "burnin_results",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("run_id", BigId, sa.ForeignKey("runs.id"), nullable=True, index=True),
    sa.Column("node", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reasons", sa.JSON, nullable=True),
    sa.Column("metrics", sa.JSON, nullable=True),
    sa.Column("ts", Epoch, nullable=False),
)

node_flags = sa.Table(
    "node_flags",
    metadata,
    sa.Column("node", sa.String(255), primary_key=True),
    sa.Column("quarantined", sa.Boolean(), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("since", Epoch, nullable=False),
    sa.Column("source", sa.String(128), nullable=True),
)

leases = sa.Table(
    "leases",
    metadata,
    # One row per job that must not run twice at once on this store (e.g. "provision").
    sa.Column("name", sa.String(64), primary_key=True),
    # Random per taking: renewals and the release touch only the holder's own row.
    sa.Column("token", sa.String(64), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    # The holder's process start time (clock ticks since boot): tells a reused pid apart.
    sa.Column("pid_started", sa.Double, nullable=True),
    sa.Column("started_at", Epoch, nullable=False),
    sa.Column("heartbeat_at", Epoch, nullable=False),
    sa.Column("command", sa.Text, nullable=True),
)

controllers = sa.Table(
    "controllers",
    metadata,
    # One row per running controller process (provision, maintain, check): its one heartbeat renews
    # every node lease it holds. Random token per process; the row goes when it ends or is taken over.
    sa.Column("token", sa.String(64), primary_key=True),
    sa.Column("job", sa.String(64), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("pid_started", sa.Double, nullable=True),
    sa.Column("started_at", Epoch, nullable=False),
    sa.Column("heartbeat_at", Epoch, nullable=False),
    sa.Column("run_id", BigId, nullable=True),
    sa.Column("command", sa.Text, nullable=True),
)

node_leases = sa.Table(
    "node_leases",
    metadata,
    # Which controller works on a node now (`controller`, NULL when free); `worked_by` and
    # `finished_at` say who last had it and when it was finished, so a controller that started
    # earlier does not do a node again that another one finished meanwhile.
    sa.Column("node", sa.String(255), primary_key=True),
    sa.Column("controller", sa.String(64), nullable=True, index=True),
    sa.Column("job", sa.String(64), nullable=True),
    sa.Column("taken_at", Epoch, nullable=True),
    sa.Column("worked_by", sa.String(64), nullable=True),
    sa.Column("finished_at", Epoch, nullable=True),
)

rack_power = sa.Table(
    "rack_power",
    metadata,
    # Each node's measured draw and, while it reboots, the controller holding its reboot slot: the
    # rack's budget and reboot limit are read and taken in one transaction by whichever controller.
    sa.Column("node", sa.String(255), primary_key=True),
    sa.Column("rack", sa.String(255), nullable=False, index=True),
    sa.Column("measured_w", sa.Double, nullable=True),
    sa.Column("rebooting_by", sa.String(64), nullable=True),
    sa.Column("since", Epoch, nullable=True),
)

check_figures = sa.Table(
    "check_figures",
    metadata,
    # Every figure a periodic check round measured on a node (clusterctl/check/figures.py names them).
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("run_id", BigId, sa.ForeignKey("runs.id"), nullable=True, index=True),
    sa.Column("node", sa.String(255), nullable=False),
    sa.Column("metric", sa.String(128), nullable=False),
    sa.Column("value", sa.Double, nullable=True),
    # The round's instant by the nodes' clocks (the lab's nodes live in simulated time).
    sa.Column("ts", Epoch, nullable=False),
    sa.Column("labels", sa.JSON, nullable=True),
    # A node's history of one metric: judging against its own past, and `clusterctl trends --node`.
    sa.Index(None, "node", "metric", "ts"),
    sqlite_autoincrement=True,
)

check_findings = sa.Table(
    "check_findings",
    metadata,
    # What a check round found beyond the absolute rules (those are in `checks`): regressions against
    # peers or the node's own history, and each node's early-warning score. Few rows, so the fleet's
    # regressions over months answer without reading the figures.
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("run_id", BigId, sa.ForeignKey("runs.id"), nullable=True, index=True),
    sa.Column("node", sa.String(255), nullable=False),
    sa.Column("metric", sa.String(128), nullable=False),
    sa.Column("judge", sa.String(16), nullable=False),  # peers | history | rate | risk
    sa.Column("value", sa.Double, nullable=True),  # the size of the change (share, per day) or the score
    sa.Column("since", Epoch, nullable=True),
    sa.Column("detail", sa.Text, nullable=True),
    sa.Column("remediation", sa.Text, nullable=True),
    sa.Column("ts", Epoch, nullable=False),
    sa.Index(None, "ts"),
    sa.Index(None, "node", "ts"),
    sqlite_autoincrement=True,
)

check_bands = sa.Table(
    "check_bands",
    metadata,
    # Each round's peer statistics per metric and GPU model, as the peers judge computed them: a node page's
    # band over 90 rounds reads a few hundred of these instead of every node's figures of those rounds.
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("run_id", BigId, sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("metric", sa.String(128), nullable=False),
    sa.Column("model", sa.String(255), nullable=True),  # the GPU model; null: nodes the inventory gives none
    sa.Column("median", sa.Double, nullable=False),
    sa.Column("mad", sa.Double, nullable=False),  # median absolute deviation from the median
    sa.Column("peers", sa.Integer, nullable=False),  # figures the median is of
    sa.Index(None, "run_id", "metric"),
    sqlite_autoincrement=True,
)
