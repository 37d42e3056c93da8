"""Store: a lead's history, and a period for the monitor, read from 1,000,000 stored scores,
on SQLite and on PostgreSQL.

    .venv/bin/python benchmarks/bench_store.py            # 100,000 leads x 10 scores, 2,000 reads
    .venv/bin/python benchmarks/bench_store.py --quick    # 2,000 leads x 10 scores, 200 reads

Fills a new store (migrated by ScoreStore, as in use) with --store-leads x --store-per-lead
scores, written round by round as a service would write them (each lead's scores scattered
through the table, not side by side), bulk-loaded (executemany on SQLite, COPY on
PostgreSQL). Then times `ScoreStore.history(lead_id)` for random leads (p50 / p99 / max; aim
p99 < 20 ms at 1M scores on both) and `record()` of batches of 1 and 100 scores for known
leads with one webhook URL (the band-change lookup and outbox included); then the monitor's
reads (issue 17): `scores_between` of one round's as-of (a tenth of the table) and of the whole
table, and `fingerprints` of --store-fingerprints random score ids. PostgreSQL is a
throwaway server (tests/pg.py, fsync on as a real one) and is left out, said so, where none is
installed. Reads are warm: the database fits in memory here, as it would on a real server.
`others` counts the PostgreSQL server's own processes too (they are not this script's children).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import runner
from fixtures import ROOT
from measure import contention, say, timed, wait_for_quiet, warn_contended

NAME = "store"
DEFAULT = False  # starts a PostgreSQL server and writes ~1 GB: only when named
QUICK = {"store_leads": 2000, "store_reads": 200, "store_fingerprints": 2000}
T0 = datetime(2026, 1, 1, tzinfo=UTC)
FEATURES = [f"feature_{i:02d}" for i in range(12)]  # a fingerprint about as long as a real one
REASONS = ["visits_30d", "pricing_views", "job_title", "company_size", "email_opens"]


def add_options(p: argparse._ArgumentGroup) -> None:
    p.add_argument("--store-leads", type=int, default=100_000, help="store: leads stored")
    p.add_argument("--store-per-lead", type=int, default=10, help="store: scores per lead")
    p.add_argument("--store-reads", type=int, default=2000, help="store: history reads timed")
    p.add_argument(
        "--store-fingerprints",
        type=int,
        default=50_000,
        help="store: score ids whose fingerprints are read at once",
    )
    p.add_argument(
        "--store-backends",
        default="sqlite,postgresql",
        help="store: which databases (comma-separated: sqlite, postgresql)",
    )


def _rows(leads: int, per_lead: int, seed: int = 7):
    """The stored scores as column tuples, round by round (all leads' 1st score, then 2nd...)."""
    from leadml import store

    rng = random.Random(seed)
    texts = []
    for _ in range(500):  # distinct reasons / fingerprints, reused: making them is not measured
        reasons = [[r, round(rng.uniform(-8, 12), 2)] for r in REASONS]
        features = store.fingerprint({f: rng.uniform(0, 50) for f in FEATURES})
        texts.append((json.dumps(reasons), json.dumps([list(x) for x in features])))
    order = list(range(leads))
    for round_ in range(per_lead):
        rng.shuffle(order)
        start = T0 + timedelta(days=round_)
        for k, lead in enumerate(order):
            score = rng.randint(1, 99)
            reasons, fingerprint = texts[(lead + round_) % len(texts)]
            yield (
                f"L{lead:07d}",
                start + timedelta(seconds=k * 60 / max(leads, 1)),
                "leadml",
                str(1 + round_ // 4),
                score / 100,
                score,
                "SQL" if score >= 70 else "MQL" if score >= 40 else "Unqualified",
                reasons,
                fingerprint,
                "ABCD"[lead % 4],
                "1234"[score % 4],
                "ABCD"[lead % 4] + "1234"[score % 4],
                "warm",
                "MoFu",
                False,
                start,  # as_of: each round a batch scored as of its day
            )


def _columns() -> list[str]:
    """The scores table's columns but the id, in the order `_rows` yields them."""
    from leadml import store

    return [c.name for c in store.scores.columns if c.name != "id"]


def _fill(scores, leads: int, per_lead: int) -> None:
    """Bulk-load the scores (not through record(): filling is not what is measured)."""
    from itertools import islice

    from leadml import store

    rows, columns = _rows(leads, per_lead), _columns()
    if scores.engine.dialect.name == "postgresql":
        raw = scores.engine.raw_connection()
        try:
            with (
                raw.cursor() as cur,
                cur.copy(f"COPY scores ({', '.join(columns)}) FROM STDIN") as cp,
            ):
                for row in rows:
                    cp.write_row(row)
            raw.commit()
            with raw.cursor() as cur:
                cur.execute("ANALYZE scores")  # as autovacuum would after a load this size
            raw.commit()
        finally:
            raw.close()
        return
    with scores.engine.begin() as conn:
        while chunk := list(islice(rows, 50_000)):
            conn.execute(store.scores.insert(), [dict(zip(columns, r, strict=True)) for r in chunk])


def _ms(values: list[float]) -> dict:
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    return {
        "p50_ms": round(statistics.median(values) * 1000, 3),
        "p99_ms": round(pick(0.99) * 1000, 3),
        "max_ms": round(values[-1] * 1000, 3),
        "n": len(values),
    }


def _batch(leads: int, size: int, rng: random.Random, when: datetime):
    from leadml.store import ScoreRecord

    out = []
    for i in range(size):
        score = rng.randint(1, 99)
        out.append(
            ScoreRecord(
                lead_id=f"L{rng.randrange(leads):07d}",
                scored_at=when + timedelta(seconds=i),
                model_name="leadml",
                model_version="9",
                probability=score / 100,
                score=score,
                band="SQL" if score >= 70 else "MQL" if score >= 40 else "Unqualified",
                reasons=(("visits_30d", 3.5),),
                fingerprint=(("feature_00", 1.0),),
            )
        )
    return out


def _measure(url: str, args: argparse.Namespace) -> dict:
    from leadml.store import ScoreStore

    out: dict = {"scores": args.store_leads * args.store_per_lead}
    with timed(out, "migrate_s"):
        scores = ScoreStore(url)
    with timed(out, "fill_s"):
        _fill(scores, args.store_leads, args.store_per_lead)
    rng = random.Random(11)
    wait_for_quiet()  # --quiet-wait: also lets PostgreSQL's autovacuum finish with the load
    reader = ScoreStore(url)  # a fresh one, as the service holds
    for _ in range(min(100, args.store_reads)):  # warm-up: connections, statement caches
        reader.history(f"L{rng.randrange(args.store_leads):07d}")
    times, lengths = [], []
    with contention(out):
        for _ in range(args.store_reads):
            lead = f"L{rng.randrange(args.store_leads):07d}"
            t = time.perf_counter()
            found = reader.history(lead)
            times.append(time.perf_counter() - t)
            lengths.append(len(found))
    out["history"] = _ms(times) | {"entries_per_read": round(statistics.mean(lengths), 2)}
    out |= _monitor_reads(reader, args, rng)  # before record() adds to the filled table
    when = T0 + timedelta(days=args.store_per_lead + 1)
    for size, reps in ((1, 50), (100, 20)):
        took = []
        for _ in range(reps):
            batch = _batch(args.store_leads, size, rng, when)
            t = time.perf_counter()
            reader.record(batch, ("http://crm.example/hook",))
            took.append(time.perf_counter() - t)
        out[f"record_{size}"] = _ms(took)
    with reader.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            size_sql = "SELECT pg_total_relation_size('scores')"
            out["bytes"] = conn.exec_driver_sql(size_sql).scalar()
        else:
            out["bytes"] = Path(reader.engine.url.database or "").stat().st_size
    reader.engine.dispose()
    scores.engine.dispose()
    return out


def _monitor_reads(reader, args: argparse.Namespace, rng: random.Random) -> dict:
    """`scores_between` of one round (the 2nd: each round is a day) and of everything, and
    `fingerprints` of random ids; each once after one warm-up read of the same period."""
    out: dict = {}
    periods = {
        "period_day": (T0 + timedelta(days=1), T0 + timedelta(days=2)),
        "period_all": (None, None),
    }
    for key, (since, until) in periods.items():
        reader.scores_between(since, until)
        t = time.perf_counter()
        frame = reader.scores_between(since, until)
        out[key] = {"s": round(time.perf_counter() - t, 3), "rows": len(frame)}
    total = args.store_leads * args.store_per_lead
    ids = rng.sample(range(1, total + 1), min(args.store_fingerprints, total))
    t = time.perf_counter()
    found = reader.fingerprints(ids)
    out["fingerprints"] = {
        "s": round(time.perf_counter() - t, 3),
        "ids": len(ids),
        "found": len(found),
    }
    return out


def _report(name: str, r: dict) -> None:
    h = r["history"]
    say(
        f"[store] {name}: {r['scores']:,} scores filled in {r['fill_s']:.1f} s "
        f"({r['bytes'] / 2**20:.0f} MiB); history() p50 {h['p50_ms']:.2f} ms, p99 "
        f"{h['p99_ms']:.2f} ms, max {h['max_ms']:.2f} ms over {h['n']:,} reads "
        f"({h['entries_per_read']} entries each): aim p99 < 20 ms "
        f"{'met' if h['p99_ms'] < 20 else 'MISSED'}"
    )
    say(
        f"[store] {name}: record() of 1 score p50 {r['record_1']['p50_ms']:.2f} ms, "
        f"of 100 scores p50 {r['record_100']['p50_ms']:.2f} ms "
        f"(p99 {r['record_100']['p99_ms']:.2f} ms)"
    )
    day, every, fp = r["period_day"], r["period_all"], r["fingerprints"]
    say(
        f"[store] {name}: scores_between() of one day {day['s']:.2f} s ({day['rows']:,} rows), "
        f"of all {every['s']:.2f} s ({every['rows']:,} rows); fingerprints() of "
        f"{fp['ids']:,} ids {fp['s']:.2f} s ({fp['found']:,} found)"
    )
    warn_contended(r)


def run(args: argparse.Namespace) -> dict:
    sys.path.insert(0, str(ROOT))  # tests/pg.py: the tests' throwaway server, reused
    from tests import pg

    out: dict = {}
    backends = [b.strip() for b in args.store_backends.split(",") if b.strip()]
    if "sqlite" in backends:
        with tempfile.TemporaryDirectory(dir=args.work) as tmp:
            out["sqlite"] = _measure(f"sqlite:///{Path(tmp) / 'store.db'}", args)
            _report("SQLite", out["sqlite"])
    if "postgresql" in backends:
        try:
            with pg.server(durable=True) as server:
                out["postgresql"] = _measure(server.new_database("bench"), args)
                out["postgresql"]["server"] = str(server.bin)
                _report("PostgreSQL", out["postgresql"])
        except pg.Unavailable as e:
            say(f"[store] PostgreSQL left out: {e}")
            out["postgresql"] = {"skipped": str(e)}
    return out


def markdown(d: dict) -> list[str]:
    rows: list[tuple[str, object]] = []
    for name, r in d.items():
        if "skipped" in r:
            rows.append((f"{name}", f"left out: {r['skipped']}"))
            continue
        h = r["history"]
        rows += [
            (f"{name}: scores stored", f"{r['scores']:,}"),
            (f"{name}: fill (s) / size (MiB)", f"{r['fill_s']:.1f} / {r['bytes'] / 2**20:.0f}"),
            (
                f"{name}: history() p50 / p99 / max (ms)",
                f"{h['p50_ms']} / {h['p99_ms']} / {h['max_ms']} ({h['n']} reads)",
            ),
            (f"{name}: aim p99 < 20 ms", "met" if h["p99_ms"] < 20 else "MISSED"),
            (
                f"{name}: record() 1 score / 100 scores, p50 (ms)",
                f"{r['record_1']['p50_ms']} / {r['record_100']['p50_ms']}",
            ),
            (
                f"{name}: scores_between() one day / all (s)",
                f"{r['period_day']['s']} ({r['period_day']['rows']:,} rows) / "
                f"{r['period_all']['s']} ({r['period_all']['rows']:,} rows)",
            ),
            (
                f"{name}: fingerprints() of {r['fingerprints']['ids']:,} ids (s)",
                f"{r['fingerprints']['s']}",
            ),
            (f"{name}: others (cores) during the reads", runner.contended(r)),
        ]
    return runner.md_table("store", rows)


if __name__ == "__main__":
    sys.exit(runner.main([sys.modules[__name__]]))
