"""The score store: every score kept, read back as a lead's history (issue 16, first part).

The only module that talks to the score database, as `tracking.py` is for MLflow. SQLAlchemy
Core, so the same code runs on SQLite (the default, a file under the home) and PostgreSQL
(`LEADML_STORE_URL=postgresql+psycopg://...`). Rows hold ids, scores, reason points and a
rounded feature fingerprint only: never personal data.

The tables are declared once, here; the Alembic revisions in `leadml/migrations/versions/`
create them, and `ScoreStore` brings a database to the newest revision when it opens it. A
test compares the migrated database with this metadata, so the two cannot drift apart.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, overload

import sqlalchemy as sa

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

metadata = sa.MetaData()
scores = sa.Table(
    "scores",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("lead_id", sa.String(200), nullable=False),
    sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(50), nullable=False),
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("score", sa.Integer, nullable=False),
    sa.Column("band", sa.String(50), nullable=False),
    sa.Column("reasons", sa.Text, nullable=False),
    sa.Column("fingerprint", sa.Text, nullable=False),
    # the grades (issue 15): null for a model without them
    sa.Column("fit", sa.String(1)),
    sa.Column("engagement", sa.String(1)),
    sa.Column("grid", sa.String(2)),
    sa.Column("temperature", sa.String(10)),
    sa.Column("stage", sa.String(10)),
    sa.Column("pql", sa.Boolean),
    # the moment the score describes (issue 17): a backfill's --as-of, the data's "now" of a
    # batch, else scored_at; nullable only because revision 0002 added it to filled tables
    sa.Column("as_of", sa.DateTime(timezone=True)),
    sa.Index("ix_scores_lead_time", "lead_id", "scored_at"),
    sa.Index("ix_scores_as_of", "as_of"),
)
# band changes waiting for (or done with) delivery: one row per event and receiver, written in
# the same transaction as the score that changed the band, so none is lost between the two
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(64), nullable=False),  # the Idempotency-Key
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),  # the JSON event, signed as written
    sa.Column("status", sa.String(12), nullable=False),  # pending / delivered / failed
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
    sa.Column("last_error", sa.Text),
    sa.Index("ix_outbox_due", "status", "next_at"),
)
GRADE_FIELDS = ("fit", "engagement", "grid", "temperature", "stage", "pql")
# what `ScoreStore.scores_between` reads, and the types it hands them back in
PERIOD_COLUMNS = (
    "id",
    "lead_id",
    "as_of",
    "scored_at",
    "model_name",
    "model_version",
    "probability",
    "score",
    "band",
    "grid",
)
_TIMES = ("as_of", "scored_at")
_NUMBERS = {"id": "int64", "score": "int64", "probability": "float64"}
_PERIOD_DTYPES = {  # text as pandas' own str dtype (a missing grid: NaN), as dataset reads it
    "id": "int64",
    "lead_id": "str",
    "as_of": "datetime64[us, UTC]",  # the resolution fixed: pandas infers it from the values
    "scored_at": "datetime64[us, UTC]",
    "model_name": "str",
    "model_version": "str",
    "probability": "float64",
    "score": "int64",
    "band": "str",
    "grid": "str",
}


@dataclass(frozen=True)
class ScoreRecord:
    """One score as stored: reasons are (field, points); the fingerprint maps feature -> value.
    `as_of` is the moment the score describes; None (a live score) stores `scored_at`."""

    lead_id: str
    scored_at: datetime
    model_name: str
    model_version: str
    probability: float
    score: int
    band: str
    reasons: tuple[tuple[str, float], ...] = ()
    fingerprint: tuple[tuple[str, float], ...] = ()
    fit: str | None = None
    engagement: str | None = None
    grid: str | None = None
    temperature: str | None = None
    stage: str | None = None
    pql: bool | None = None
    as_of: datetime | None = None


@dataclass(frozen=True)
class OutboxEntry:
    """One band-change event for one receiver, as kept in the outbox."""

    id: int
    event_id: str
    url: str
    body: str
    status: str
    attempts: int
    created_at: datetime
    next_at: datetime
    delivered_at: datetime | None
    last_error: str | None


def fingerprint(features: dict[str, float], digits: int = 3) -> tuple[tuple[str, float], ...]:
    """A compact, comparable copy of a lead's derived features: each rounded to `digits` significant digits."""
    return tuple((name, float(f"{value:.{digits}g}")) for name, value in sorted(features.items()))


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """Alembic's settings without an ini file: the revisions shipped in the package and, when
    given, the connection to migrate (env.py takes it from `attributes`)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def migrate(engine: sa.Engine) -> None:
    """Bring the database to the newest revision (nothing to do when it is there), in one
    transaction that holds the database's write lock, so two processes opening a new store at
    once (two service workers) migrate it once: the second waits, then finds it done."""
    from alembic import command

    own = engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:")
    if own:
        # pysqlite runs DDL outside any transaction and takes no lock before the first write;
        # a connection of our own that leaves transactions to us and begins with the lock (an
        # in-memory database is one connection's own: no one to race, and no other to use)
        engine = sa.create_engine(engine.url, poolclass=sa.NullPool)
        sa.event.listen(engine, "connect", _driver_leaves_transactions_to_us)
        sa.event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # held until this transaction ends
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
            command.upgrade(alembic_config(conn), "head")
    finally:
        if own:
            engine.dispose()


_MIGRATION_LOCK = 0x1EAD_0016  # any constant: the advisory lock that serialises migrations


def _driver_leaves_transactions_to_us(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None


class ScoreStore:
    """Write and read scores; the database is brought to the newest schema on open."""

    def __init__(self, url: str) -> None:
        # errors never quote the rows (lead ids, reasons) they were writing: they reach logs
        self.engine = sa.create_engine(url, future=True, hide_parameters=True)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        migrate(self.engine)

    def record(self, records: list[ScoreRecord], webhook_urls: tuple[str, ...] = ()) -> int:
        """Insert many scores in one transaction. Where a lead's band differs from its last
        stored one, a band-change event is put in the outbox for each webhook URL in the same
        transaction. Returns how many band changes there were."""
        if not records:
            return 0
        rows = [
            {
                "lead_id": r.lead_id,
                "scored_at": r.scored_at.astimezone(UTC),
                "as_of": (r.as_of or r.scored_at).astimezone(UTC),
                "model_name": r.model_name,
                "model_version": r.model_version,
                "probability": r.probability,
                "score": r.score,
                "band": r.band,
                "reasons": json.dumps([list(x) for x in r.reasons]),
                "fingerprint": json.dumps([list(x) for x in r.fingerprint]),
            }
            | {name: getattr(r, name) for name in GRADE_FIELDS}
            for r in records
        ]
        with self.engine.begin() as conn:
            events = _band_changes(conn, records) if webhook_urls else []
            conn.execute(scores.insert(), rows)
            if events:
                now = datetime.now(UTC)
                conn.execute(
                    outbox.insert(),
                    [
                        {
                            "event_id": event["idempotency_key"],
                            "url": url,
                            "body": json.dumps(event, sort_keys=True),
                            "status": "pending",
                            "attempts": 0,
                            "created_at": now,
                            "next_at": now,
                        }
                        for event in events
                        for url in webhook_urls
                    ],
                )
        return len(events)

    def due(self, now: datetime | None = None, limit: int = 100) -> list[OutboxEntry]:
        """Pending deliveries whose time has come, oldest first."""
        now = now or datetime.now(UTC)
        query = (
            sa.select(outbox)
            .where(outbox.c.status == "pending", outbox.c.next_at <= now)
            .order_by(outbox.c.next_at, outbox.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_entry(row) for row in conn.execute(query).mappings()]

    def outbox_entries(self, status: str | None = None, limit: int = 1000) -> list[OutboxEntry]:
        """The outbox, newest first, optionally one status (pending / delivered / failed)."""
        query = sa.select(outbox).order_by(outbox.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(outbox.c.status == status)
        with self.engine.connect() as conn:
            return [_entry(row) for row in conn.execute(query).mappings()]

    def claim(self, entry_id: int, now: datetime, lease_s: float) -> bool:
        """Take one due delivery for `lease_s` seconds; False when another sender took it first.

        Atomic on any database: the one UPDATE moves `next_at` past `now` only while the entry
        is still pending and due, so of several senders on one store (service workers, `leadml
        webhooks --send`) exactly one sees its row change. A sender that dies holding a claim
        leaves the entry due again when the lease ends; the attempt is then counted by
        `delivered` or `retry`, never by the claim."""
        query = (
            outbox.update()
            .where(
                outbox.c.id == entry_id,
                outbox.c.status == "pending",
                outbox.c.next_at <= now,
            )
            .values(next_at=now + timedelta(seconds=lease_s))
        )
        with self.engine.begin() as conn:
            return conn.execute(query).rowcount == 1

    def outbox_counts(self) -> dict[str, int]:
        """How many deliveries each status (pending / delivered / failed) holds."""
        query = sa.select(outbox.c.status, sa.func.count()).group_by(outbox.c.status)
        with self.engine.connect() as conn:
            return {status: count for status, count in conn.execute(query)}

    def delivered(self, entry_id: int, now: datetime | None = None) -> None:
        """Mark one delivery done."""
        self._update(
            entry_id,
            status="delivered",
            attempts=outbox.c.attempts + 1,
            delivered_at=now or datetime.now(UTC),
            last_error=None,
        )

    def retry(self, entry_id: int, next_at: datetime, error: str, give_up: bool = False) -> None:
        """Record a failed attempt: tried again at `next_at`, or `failed` when giving up."""
        self._update(
            entry_id,
            status="failed" if give_up else "pending",
            attempts=outbox.c.attempts + 1,
            next_at=next_at,
            last_error=error[:500],
        )

    def replay(self, entry_ids: list[int] | None = None, now: datetime | None = None) -> int:
        """Put deliveries back to pending, due now (all failed ones when no ids are given);
        the receiver dedupes on the unchanged event id. Returns how many."""
        query = outbox.update().values(status="pending", next_at=now or datetime.now(UTC))
        if entry_ids is None:
            query = query.where(outbox.c.status == "failed")
        else:
            query = query.where(outbox.c.id.in_(entry_ids))
        with self.engine.begin() as conn:
            return conn.execute(query).rowcount

    def _update(self, entry_id: int, **values) -> None:
        with self.engine.begin() as conn:
            conn.execute(outbox.update().where(outbox.c.id == entry_id).values(**values))

    def history(self, lead_id: str, limit: int = 100) -> list[ScoreRecord]:
        """A lead's scores, newest first; empty when the lead was never scored."""
        query = (
            sa.select(scores)
            .where(scores.c.lead_id == lead_id)
            .order_by(scores.c.scored_at.desc(), scores.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_record(row) for row in conn.execute(query).mappings()]

    def latest(self, lead_id: str) -> ScoreRecord | None:
        """The lead's newest score, or None."""
        found = self.history(lead_id, limit=1)
        return found[0] if found else None

    def scores_between(
        self,
        since: datetime | None,
        until: datetime | None,
        model_name: str | None = None,
        chunk: int = 100_000,
    ) -> pd.DataFrame:
        """The scores whose as-of lies in [since, until) (a None bound: open; a bound without a
        zone is UTC, as the data's times are), optionally one model's, oldest as-of first: the monitor joins them to outcomes. Read a chunk of rows
        at a time, each chunk turned into typed columns at once (no pandas inference, no
        object of ours per row), times parsed vectorised (see `_raw_time`)."""
        import numpy as np
        import pandas as pd

        c = scores.c
        epoch = self.engine.dialect.name == "postgresql"
        raw = {name: _raw_time(c[name], epoch) for name in _TIMES}
        query = sa.select(*(raw.get(name, c[name]) for name in PERIOD_COLUMNS))
        if since is not None:
            query = query.where(c.as_of >= _utc(since))
        if until is not None:
            query = query.where(c.as_of < _utc(until))
        if model_name is not None:
            query = query.where(c.model_name == model_name)
        parts: list[list[np.ndarray]] = [[_array(name, [])] for name in PERIOD_COLUMNS]
        with self.engine.connect() as conn:
            if epoch:  # a server-side cursor: the server keeps what is not fetched yet
                conn = conn.execution_options(stream_results=True, yield_per=chunk)
            result = conn.execute(query.order_by(c.as_of, c.id))
            while rows := result.fetchmany(chunk):
                for k, values in enumerate(zip(*rows, strict=True)):
                    parts[k].append(_array(PERIOD_COLUMNS[k], values))
        # one frame at the end: pandas turns each text column into its str dtype once
        columns = dict(zip(PERIOD_COLUMNS, map(np.concatenate, parts), strict=True))
        for name in _TIMES:
            columns[name] = _parse_times(columns[name], epoch)
        return pd.DataFrame(columns).astype(_PERIOD_DTYPES)

    def fingerprints(self, ids: list[int], chunk: int = 900) -> dict[int, dict[str, float]]:
        """Stored scores' features (feature -> value; a feature missing when scored is absent)
        by score id, for the ids that exist. IN lists of at most 900: SQLite allows 999 bound
        values in older builds."""
        query = sa.select(scores.c.id, scores.c.fingerprint)
        found: dict[int, dict[str, float]] = {}
        wanted = sorted({int(i) for i in ids})
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), chunk):
                part = wanted[start : start + chunk]
                for score_id, text in conn.execute(query.where(scores.c.id.in_(part))):
                    found[score_id] = {f: float(v) for f, v in json.loads(text)}
        return found

    def prune(self, days: int, now: datetime | None = None) -> int:
        """Delete scores older than `days`; returns how many went."""
        cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
        with self.engine.begin() as conn:
            return conn.execute(scores.delete().where(scores.c.scored_at < cutoff)).rowcount


def _array(name: str, values: Sequence) -> np.ndarray:
    """One column of a chunk: numbers straight into numpy, the rest as objects."""
    import numpy as np

    return np.array(values, dtype=_NUMBERS.get(name, object))


def _raw_time(column: sa.Column, epoch: bool) -> sa.ColumnElement:
    """A time column as pandas parses it fast: PostgreSQL's as microseconds since the epoch
    (a datetime object per value, in the session's zone, costs ~12 us each to convert);
    SQLite's as the text it keeps (SQLAlchemy's own parser costs ~2 us a value)."""
    if epoch:
        micros = sa.cast(sa.extract("epoch", column) * 1_000_000, sa.BigInteger)
        return micros.label(column.name)
    return sa.type_coerce(column, sa.String).label(column.name)


def _parse_times(values: np.ndarray, epoch: bool) -> pd.DatetimeIndex:
    import pandas as pd

    if epoch:
        return pd.to_datetime(pd.to_numeric(values), unit="us", utc=True)
    return pd.to_datetime(values, utc=True, format="ISO8601")


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """Several service workers (each with its own writer thread) and the CLI share one SQLite
    file: WAL lets readers go on while one writes, and a writer waits up to 10 s for the lock
    instead of failing at once."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout = 10000")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.close()


def _band_changes(conn: sa.Connection, records: list[ScoreRecord]) -> list[dict]:
    """Band-change events for these records against each lead's last stored band (and the
    records before it in the same batch). A lead's first score is no change."""
    leads = sorted({r.lead_id for r in records})
    last: dict[str, str] = {}
    for start in range(0, len(leads), 500):  # bounded IN lists
        chunk = leads[start : start + 500]
        newest = (
            sa.select(scores.c.lead_id, sa.func.max(scores.c.id).label("id"))
            .where(scores.c.lead_id.in_(chunk))
            .group_by(scores.c.lead_id)
            .subquery()
        )
        query = sa.select(scores.c.lead_id, scores.c.band).join(newest, scores.c.id == newest.c.id)
        last.update({lead: band for lead, band in conn.execute(query)})
    events = []
    for r in records:
        old = last.get(r.lead_id)
        if old is not None and old != r.band:
            events.append(
                {
                    "type": "band_changed",
                    "idempotency_key": uuid.uuid4().hex,
                    "lead_id": r.lead_id,
                    "old_band": old,
                    "new_band": r.band,
                    "score": r.score,
                    "probability": r.probability,
                    "model_name": r.model_name,
                    "model_version": r.model_version,
                    "scored_at": _utc(r.scored_at).isoformat(),
                }
            )
        last[r.lead_id] = r.band
    return events


@overload
def _utc(value: datetime) -> datetime: ...
@overload
def _utc(value: None) -> None: ...
@overload
def _utc(value: datetime | None) -> datetime | None: ...
def _utc(value: datetime | None) -> datetime | None:
    """Times read back in UTC: SQLite keeps no zone (everything stored is UTC), PostgreSQL
    answers in the session's zone, which is the server's unless told otherwise."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _entry(row: sa.RowMapping) -> OutboxEntry:
    return OutboxEntry(
        **{name: row[name] for name in ("id", "event_id", "url", "body", "status", "attempts")},
        created_at=_utc(row["created_at"]),
        next_at=_utc(row["next_at"]),
        delivered_at=_utc(row["delivered_at"]),
        last_error=row["last_error"],
    )


def _record(row: sa.RowMapping) -> ScoreRecord:
    return ScoreRecord(
        lead_id=row["lead_id"],
        scored_at=_utc(row["scored_at"]),
        model_name=row["model_name"],
        model_version=row["model_version"],
        probability=row["probability"],
        score=row["score"],
        band=row["band"],
        reasons=tuple((f, float(p)) for f, p in json.loads(row["reasons"])),
        fingerprint=tuple((f, float(v)) for f, v in json.loads(row["fingerprint"])),
        **{name: row[name] for name in GRADE_FIELDS},
        as_of=_utc(row["as_of"]),
    )


def trend(history: list[ScoreRecord], last: int = 5, flat_below: float = 0.5) -> tuple[str, float]:
    """Rising / falling / flat over the last entries (newest first), with the slope in points per entry."""
    points = [r.score for r in reversed(history[:last])]
    if len(points) < 2:
        return "flat", 0.0
    n = len(points)
    mean_x, mean_y = (n - 1) / 2, sum(points) / n
    slope = sum((i - mean_x) * (y - mean_y) for i, y in enumerate(points)) / sum(
        (i - mean_x) ** 2 for i in range(n)
    )
    word = "flat" if abs(slope) < flat_below else "rising" if slope > 0 else "falling"
    return word, round(slope, 3)


def changes(newer: ScoreRecord, older: ScoreRecord) -> list[str]:
    """What moved between two scores, in words: features whose value changed, reasons whose points did."""
    words = []
    old_features, new_features = dict(older.fingerprint), dict(newer.fingerprint)
    for name in sorted(set(old_features) | set(new_features)):
        before, after = old_features.get(name), new_features.get(name)
        if before != after:
            words.append(f"feature {name} changed from {before} to {after}")
    old_reasons, new_reasons = dict(older.reasons), dict(newer.reasons)
    for name in sorted(set(old_reasons) | set(new_reasons)):
        before_p, after_p = old_reasons.get(name, 0.0), new_reasons.get(name, 0.0)
        if before_p != after_p:
            words.append(f"reason {name} moved from {before_p:+g} to {after_p:+g} points")
    return words
