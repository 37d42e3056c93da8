"""Dask: the in-memory engine against a 2-worker local Dask cluster, at a scale that needs it.

    .venv/bin/python benchmarks/bench_dask.py                 # 10M leads, ~100M events (~20 GB, 15 min)
    .venv/bin/python benchmarks/bench_dask.py --copies 2      # 2M leads
    .venv/bin/python benchmarks/bench_dask.py --quick         # 1 copy of 3,000 leads: a smoke run

Data: the synthetic sample of the other subjects (--leads, default 1M; generated once, cached),
tiled `--copies` times (10M leads) with new lead ids, each copy keeping a random
`--keep-events` share of its events (~100M events), written as Parquet parts (leads/ and
events/ folders, 1M-row row groups at most), as a warehouse export would be; and the same with
`--compare-copies` (3M leads), which the in-memory engine can hold. Model: the one fitted on
the --demo-leads sample (shared with the scoring subject).

Measured in one run, each step in a fresh child process (so each peak is its own):

1. dask features: `DaskEngine.read_crm` (read + check + shuffle) and `features` for every
   lead as of the cut-off, reduced to column sums on the cluster (the matrix itself is
   larger than this machine wants to hold).
2. dask score: `score_file(..., engine=...)` writing Parquet parts.
3. local score: `score_file(...)` in memory writing one Parquet file, watched by a guard
   that stops it above --local-limit-gib of RSS (the machine is shared; an OOM kill would
   take neighbours with it).
4. dask score and local score again on the 3M-lead set: the throughput ratio.

Peak memory: each worker's and the driver's ru_maxrss (the driver also runs the scheduler).
Figures go to <work>/dask.json and dask.md; copy them to RESULTS.md by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import fixtures
import measure
import runner
from measure import GIB, say

NAME = "dask"
DEFAULT = False  # about 20 GB of RAM and 15 min at full size; `make bench-scale`
QUICK = {"copies": 1, "compare_copies": 1, "worker_memory": "1GiB", "local_limit_gib": 2.0}
CUT = "2026-07-30"  # the day after the base sample's last event: both engines score as of it
STEPS = ("features", "dask-big", "local-big", "dask", "local")


def add_options(p: argparse._ArgumentGroup) -> None:
    p.add_argument(
        "--copies", type=int, default=10, help="dask: copies of the base sample in the big set"
    )
    p.add_argument(
        "--keep-events",
        type=float,
        default=0.5,
        help="dask: share of events per copy in the big data set (0.5: ~100M events)",
    )
    p.add_argument(
        "--compare-copies",
        type=int,
        default=3,
        help="dask: copies in the set both engines score, same events per lead (3: 3M leads; the "
        "in-memory engine cannot hold 10M leads in 20 GiB)",
    )
    p.add_argument("--worker-memory", default="8GiB", help="dask: memory_limit per worker")
    p.add_argument(
        "--local-limit-gib", type=float, default=20.0, help="dask: stop a local run above this RSS"
    )
    p.add_argument(
        "--skip", default="", help=f"dask: comma-separated steps to skip: {','.join(STEPS)}"
    )


def _worker_peak() -> int:
    return measure.peak_rss_bytes()


def tile(base: Path, out: Path, copies: int, keep: float) -> dict:
    """`copies` copies of the base sample with new ids and a share `keep` of the events each."""
    import numpy as np
    import pandas as pd

    (out / "leads").mkdir(parents=True)
    (out / "events").mkdir()
    leads = pd.read_parquet(base / "leads.parquet")
    events = pd.read_parquet(base / "events.parquet")
    n_events = 0
    for k in range(copies):
        shift = (k + 1) * 10_000_000
        leads.assign(lead_id=leads["lead_id"] + shift).to_parquet(
            out / "leads" / f"part-{k:03d}.parquet", index=False, row_group_size=250_000
        )
        keep_rows = np.random.default_rng(k).random(len(events)) < keep
        part = events.loc[keep_rows].assign(lead_id=lambda e, s=shift: e["lead_id"] + s)
        half = len(part) // 2
        for j, chunk in enumerate((part.iloc[:half], part.iloc[half:])):
            chunk.to_parquet(
                out / "events" / f"part-{k:03d}-{j}.parquet", index=False, row_group_size=1_000_000
            )
        n_events += len(part)
    return {"leads": copies * len(leads), "events": n_events, "copies": copies, "keep": keep}


def ensure_data(args: argparse.Namespace, copies: int) -> tuple[Path, dict]:
    base, _ = fixtures.ensure_crm(
        args.work, args.leads, args.seed, args.events_per_lead, args.regen
    )
    keep = args.keep_events
    folder = args.work / f"scale_{copies}x_k{keep:g}"
    if args.leads != 1_000_000:  # the default size keeps its old name (and cache)
        folder = args.work / f"scale_{args.leads}_{copies}x_k{keep:g}"
    doing = f"tiling {base.name} {copies} times"
    out, reused = fixtures.cached_folder(
        folder, args.regen, doing, tile, base, folder, copies, keep
    )
    if not reused:
        say(f"[data] {out['leads']:,} leads, {out['events']:,} events")
    return folder, out


def dask_features(folder: str, model: str, memory: str) -> dict:
    from leadml.dask_engine import DaskEngine
    from leadml.model import LeadScorer

    spec = LeadScorer.load(model).spec
    out: dict = {}
    with DaskEngine.connect(workers=2, memory_limit=memory) as engine:
        t0 = time.perf_counter()
        tables = engine.read_crm(Path(folder), None, require_outcome=False)
        out["read_check_shuffle_s"] = round(time.perf_counter() - t0, 2)
        out["partitions"] = int(tables.events.npartitions)
        t1 = time.perf_counter()
        X = engine.features(tables, spec, CUT)
        sums = X[spec.feature_names].sum().compute()
        out["features_s"] = round(time.perf_counter() - t1, 2)
        out["total_s"] = round(time.perf_counter() - t0, 2)
        out["events"] = int(tables.events.map_partitions(len).sum().compute())
        out["leads"] = int(tables.counts()["leads"].read)  # rows read
        out["check_sum"] = float(sums.sum())
        out["worker_peak_gib"] = sorted(
            round(v / GIB, 2) for v in engine.client.run(_worker_peak).values()
        )
    out["driver_peak_gib"] = round(_worker_peak() / GIB, 2)
    return out


def dask_score(folder: str, model: str, memory: str, out_dir: str) -> dict:
    from leadml.config import Settings
    from leadml.dask_engine import DaskEngine
    from leadml.score import score_file

    out: dict = {}
    with DaskEngine.connect(workers=2, memory_limit=memory) as engine:
        t0 = time.perf_counter()
        out_file, settings = Path(out_dir) / "dask.parquet", Settings.from_env(out_dir)
        s = score_file(Path(folder), out_file, settings, model, as_of=CUT, engine=engine)
        out["seconds"] = round(time.perf_counter() - t0, 2)
        out["worker_peak_gib"] = sorted(
            round(v / GIB, 2) for v in engine.client.run(_worker_peak).values()
        )
    out |= {"rows_in": s.rows_in, "scored": s.scored, "rejected": s.rejected, "bands": s.bands}
    out["leads_per_s"] = round(s.rows_in / out["seconds"])
    out["driver_peak_gib"] = round(_worker_peak() / GIB, 2)
    return out


def local_score(folder: str, model: str, out_dir: str) -> dict:
    from leadml.config import Settings
    from leadml.score import score_file

    t0 = time.perf_counter()
    out_file, settings = Path(out_dir) / "local.parquet", Settings.from_env(out_dir)
    s = score_file(Path(folder), out_file, settings, model, as_of=CUT)
    out = {"seconds": round(time.perf_counter() - t0, 2)}
    out |= {"rows_in": s.rows_in, "scored": s.scored, "rejected": s.rejected, "bands": s.bands}
    out["leads_per_s"] = round(s.rows_in / out["seconds"])
    out["peak_gib"] = round(_worker_peak() / GIB, 2)
    return out


def guarded(limit_gib: float, target, *args) -> dict:
    """run_child, stopping the child (and saying so) when its RSS passes the limit."""
    import multiprocessing as mp

    stop = threading.Event()
    seen = {"max": 0.0, "killed": False}

    def watch() -> None:
        while not stop.is_set():
            for child in mp.active_children():
                try:
                    status = Path(f"/proc/{child.pid}/status").read_text()
                except OSError:
                    continue
                rss = int(next(x for x in status.splitlines() if x.startswith("VmRSS")).split()[1])
                seen["max"] = max(seen["max"], rss * 1024 / GIB)
                if rss * 1024 > limit_gib * GIB:
                    seen["killed"] = True
                    child.kill()
            time.sleep(0.2)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        out = measure.run_child(target, *args)
    finally:
        stop.set()
        thread.join()
    if seen["killed"]:
        out = {
            "error": f"stopped: RSS passed {limit_gib} GiB",
            "rss_seen_gib": round(seen["max"], 2),
        }
    return out


def run(args: argparse.Namespace) -> dict:
    # children inherit these (LightGBM next to Dask workers; quiet Dask logs)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")
    skip = set(filter(None, args.skip.split(",")))
    big, big_info = ensure_data(args, args.copies)
    small, small_info = ensure_data(args, args.compare_copies)
    model = str(
        fixtures.ensure_model(
            args.work, args.demo_leads, args.seed, args.events_per_lead, args.regen
        )
    )
    scratch = str(args.work / "scale_out")
    mem = args.worker_memory
    results: dict = {
        "data": {"big": big_info, "compare": small_info},
        "model": model,
        "worker_memory": mem,
        "local_limit_gib": args.local_limit_gib,
    }
    limit = args.local_limit_gib
    steps = [
        ("features", "dask features, big", dask_features, (str(big), model, mem)),
        ("dask-big", "dask score, big", dask_score, (str(big), model, mem, scratch)),
        ("local-big", "local score, big", local_score, (str(big), model, scratch)),
        ("dask", "dask score", dask_score, (str(small), model, mem, scratch)),
        ("local", "local score", local_score, (str(small), model, scratch)),
    ]
    for key, label, target, step_args in steps:
        if key in skip:
            continue
        say(f"[{label}] running ...")
        if target is local_score:
            out = guarded(limit, target, *step_args)
        else:
            out = measure.run_child(target, *step_args)
        results[key] = out
        say(f"[{label}] {json.dumps(out, default=str)}")
    for a, b in (("dask", "local"), ("dask-big", "local-big")):
        if "leads_per_s" in results.get(a, {}) and "leads_per_s" in results.get(b, {}):
            ratio = round(results[a]["leads_per_s"] / results[b]["leads_per_s"], 2)
            results[f"{a}_over_{b}"] = ratio
            say(f"[ratio] {a} / {b} leads per second: {ratio}")
    return results


def markdown(results: dict) -> list[str]:
    rows: list[tuple[str, object]] = [
        (
            "big set: leads, events",
            f"{results['data']['big']['leads']:,}, {results['data']['big']['events']:,}",
        ),
        (
            "compare set: leads, events",
            f"{results['data']['compare']['leads']:,}, {results['data']['compare']['events']:,}",
        ),
    ]
    for key in STEPS:
        out = results.get(key)
        if out is None:
            continue
        if "error" in out:
            rows.append((key, f"stopped: {out['error'].strip().splitlines()[-1][:120]}"))
            continue
        for field in (
            "read_check_shuffle_s",
            "features_s",
            "seconds",
            "leads_per_s",
            "worker_peak_gib",
            "driver_peak_gib",
            "peak_gib",
        ):
            if field in out:
                rows.append((f"{key}: {field}", str(out[field])))
    for ratio in ("dask_over_local", "dask-big_over_local-big"):
        if ratio in results:
            rows.append((ratio, results[ratio]))
    return runner.md_table("dask", rows)


if __name__ == "__main__":
    sys.exit(runner.main([sys.modules[__name__]]))
