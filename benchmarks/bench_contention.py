"""Contention: LightGBM boosting alone and next to a competing process, per thread setting.

    .venv/bin/python benchmarks/bench_contention.py           # 100 rounds on the 20k sample, ~2 min
    .venv/bin/python benchmarks/bench_contention.py --quick   # 5 rounds on 3,000 leads

`fit_booster` for --contention-rounds rounds on the --demo-leads sample's training slice, each
in a fresh child, with the default `threads=0`, with `OMP_WAIT_POLICY=PASSIVE` and with
`threads=1`; alone, next to a busy pure-Python loop, and next to another process training
LightGBM with default threads (what a neighbour's test run does). A diagnosis, no aim; not run
by `benchmarks/run.py` unless named.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import fixtures
import measure
import runner
from measure import say

NAME = "contention"
DEFAULT = False
QUICK = {"contention_rounds": 5}
VARIANTS = [
    ("threads=0 (default)", 0, False),
    ("threads=0, OMP_WAIT_POLICY=PASSIVE", 0, True),
    ("threads=1", 1, False),
]


def add_options(p: argparse._ArgumentGroup) -> None:
    p.add_argument(
        "--contention-rounds",
        type=int,
        default=100,
        help="contention: boosting rounds per run (the default setting next to a busy process takes ~0.6 s a round)",
    )


def _boost_child(folder: str, threads: int, passive: bool, rounds: int) -> dict:
    """`fit_booster` for a fixed number of rounds on the sample's training slice, timed."""
    if passive:  # before LightGBM's OpenMP runtime is loaded in this fresh process
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    else:
        os.environ.pop("OMP_WAIT_POLICY", None)
    from leadml import dataset as ds
    from leadml import features
    from leadml.boosting import fit_booster
    from leadml.config import TrainConfig
    from leadml.labels import label
    from leadml.local_engine import load_for_training
    from leadml.split import split

    cfg = TrainConfig()
    data = load_for_training(Path(folder), cfg)
    lab = label(data, cfg)
    parts = split(lab, cfg)
    train_leads = lab.leads.iloc[parts["train"]]
    spec_data = ds.LeadData(
        "crm", train_leads, None, "lead_id", "converted", None, data.rejects, data.source
    )
    spec = features.fit_spec(spec_data, cfg)
    X = features.build_features(lab.leads, lab.events, spec, as_of=lab.as_of).X.to_numpy()
    model = cfg.model.model_copy(
        update={"threads": threads, "max_rounds": rounds, "early_stopping_rounds": rounds + 1}
    )
    tr_rows, va_rows = parts["train"], parts["valid"]
    usage: dict = {}
    with measure.contention(usage):
        fit_booster(
            X[tr_rows], lab.y[tr_rows], X[va_rows], lab.y[va_rows], spec, model, cfg.split.seed
        )
    return {
        "boosting_s": usage["cpu"]["wall_s"],
        "train_rows": int(len(tr_rows)),
        "boost_cpu": usage["cpu"],
    }


def _busy_loop(seconds: float) -> None:
    """A competing process: one core, pure Python, for at most `seconds`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def _lightgbm_loop(seconds: float) -> None:
    """A competing process like a neighbour's test run: LightGBM training with default threads."""
    import lightgbm as lgb
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(size=(50_000, 20))
    y = (X[:, 0] + rng.normal(size=50_000) > 0).astype(float)
    data = lgb.Dataset(X, y, free_raw_data=False).construct()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        lgb.train({"objective": "binary", "verbosity": -1, "num_threads": 0}, data, 200)


COMPETITORS = {
    "alone": None,
    "busy Python loop": _busy_loop,
    "LightGBM training (default threads)": _lightgbm_loop,
}


def _measure(folder: Path, rounds: int, threads: int, passive: bool, alone: bool) -> dict:
    for _attempt in range(3):  # "alone" means alone: retry when a neighbour showed up
        res = measure.run_child(
            _boost_child, str(folder), threads, passive, rounds, quiet_first=alone
        )
        if not alone or "error" in res or res["boost_cpu"]["others_cores"] < 0.2:
            break
    return res


def run(args: argparse.Namespace) -> dict:
    folder, _ = fixtures.ensure_crm(
        args.work, args.demo_leads, args.seed, args.events_per_lead, args.regen
    )
    rounds = args.contention_rounds
    out: dict = {
        "rounds": rounds,
        "data": folder.name,
        "competitors": list(COMPETITORS),
        "runs": [],
    }
    say(
        f"[contention] {rounds} boosting rounds on {folder.name}, alone and next to a competing process ..."
    )
    ctx = mp.get_context("spawn")
    for name, competitor in COMPETITORS.items():
        hog = None
        if competitor is not None:
            measure.wait_for_quiet()
            hog = ctx.Process(target=competitor, args=(1800.0,), daemon=True)
            hog.start()
            time.sleep(3)  # let it get going (imports)
        try:
            for label, threads, passive in VARIANTS:
                res = _measure(folder, rounds, threads, passive, alone=hog is None)
                if measure.failed("contention", res):
                    continue
                row = {
                    "variant": label,
                    "competitor": name,
                    "boosting_s": res["boosting_s"],
                    "others_cores": res["boost_cpu"]["others_cores"],
                    "train_rows": res["train_rows"],
                }
                out["runs"].append(row)
                say(
                    f"[contention] {name:<36} {label:<36} {row['boosting_s']:8.2f} s  (others {row['others_cores']:.2f} cores)"
                )
        finally:
            if hog is not None:
                hog.terminate()
                hog.join()
    return out


def markdown(c: dict) -> list[str]:
    comps = c["competitors"]
    lines = [
        f"### contention ({c['rounds']} boosting rounds on {c['data']}, seconds)",
        "",
        "| variant | " + " | ".join(comps) + " |",
        "| --- |" + " --- |" * len(comps),
    ]
    by = {(r["variant"], r["competitor"]): r for r in c["runs"]}
    for variant in dict.fromkeys(r["variant"] for r in c["runs"]):
        cells = []
        for k in comps:
            r = by.get((variant, k))
            cells.append(
                "-" if r is None else f"{r['boosting_s']:.2f} (others {r['others_cores']:.2f})"
            )
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return [*lines, ""]


if __name__ == "__main__":
    sys.exit(runner.main([sys.modules[__name__]]))
