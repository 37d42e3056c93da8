"""Input: the input reader and the feature function of two versions of leadml, paired in one run.

    git worktree add /tmp/old 10c1925
    .venv/bin/python benchmarks/bench_input.py --folder data/big --old-src /tmp/old/src [--reps 3]
    .venv/bin/python benchmarks/bench_input.py --quick   # this version against itself, 3,000 leads

Runs `dataset.load_crm`, then `features.fit_spec` + `build_features` as of one cut-off, in a
fresh child process per repetition, alternating old and new (ab, ab, ...), and prints each
run and the medians with their ratio. Peak RSS is the child's own. Without --folder: the
synthetic sample of --leads; without --old-src: this version against itself (the noise of
the measurement). Used for the "input" section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import fixtures
import measure
import runner
from fixtures import ROOT
from measure import say

NAME = "input"
DEFAULT = False  # a comparison of two versions: needs --old-src to say anything
QUICK = {"reps": 1}
CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import pandas as pd
from leadml import dataset, features
from leadml.config import TrainConfig
t0 = time.perf_counter()
data = dataset.load_crm(Path(sys.argv[1]))
t1 = time.perf_counter()
spec = features.fit_spec(data, TrainConfig())
features.build_features(data.leads, data.events, spec, as_of=pd.Timestamp("2026-06-01"))
t2 = time.perf_counter()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(json.dumps({"load": round(t1 - t0, 2), "features": round(t2 - t1, 2),
                  "rss_gib": round(peak, 2), "events": len(data.events)}))
"""


def add_options(p: argparse._ArgumentGroup) -> None:
    p.add_argument(
        "--folder", type=Path, default=None, help="input: a CRM folder (default: the synthetic one)"
    )
    p.add_argument(
        "--old-src",
        type=Path,
        default=ROOT / "src",
        help="input: src/ of the version to compare with",
    )
    p.add_argument("--reps", type=int, default=3, help="input: alternating repetitions of each")


def run(args: argparse.Namespace) -> dict:
    folder = args.folder
    if folder is None:
        folder, _ = fixtures.ensure_crm(
            args.work, args.leads, args.seed, args.events_per_lead, args.regen
        )
    runs: dict[str, list[dict]] = {"old": [], "new": []}
    for _ in range(args.reps):
        for name, src in (("old", args.old_src), ("new", ROOT / "src")):
            env = fixtures.scratch_env(PYTHONPATH=str(src), OMP_WAIT_POLICY="PASSIVE")
            cmd = [sys.executable, "-c", CHILD, str(folder)]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            if done.returncode:
                return {"error": done.stderr[-2000:]}
            runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
            say(f"{name} {runs[name][-1]}")
    out: dict = {"folder": str(folder), "old_src": str(args.old_src), "runs": runs, "medians": {}}
    for key in ("load", "features", "rss_gib"):
        old = statistics.median(r[key] for r in runs["old"])
        new = statistics.median(r[key] for r in runs["new"])
        ratio = round(new / old, 2) if old else None
        out["medians"][key] = {"old": old, "new": new, "new_over_old": ratio}
        say(f"{key:<9} old {old:>7} new {new:>7} new/old {measure.fmt(ratio)}")
    return out


def markdown(out: dict) -> list[str]:
    rows = [
        (f"{key}: old, new, new/old", f"{m['old']}, {m['new']}, {measure.fmt(m['new_over_old'])}")
        for key, m in out["medians"].items()
    ]
    return runner.md_table(f"input ({out['old_src']} against this version)", rows)


if __name__ == "__main__":
    sys.exit(runner.main([sys.modules[__name__]]))
