"""The input reader and the feature function of two versions of leadml, paired in one run.

    git worktree add /tmp/old 10c1925
    .venv/bin/python benchmarks/input_paired.py data/big --old-src /tmp/old/src [--reps 3]

Runs `dataset.load_crm`, then `features.fit_spec` + `build_features` as of one cut-off, in a
fresh child process per repetition, alternating old and new (ab, ab, ...), and prints each
run and the medians with their ratio. Peak RSS is the child's own. Used for the "input"
section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
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


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("folder", type=Path, help="a CRM folder (leadml synth --out ...)")
    p.add_argument(
        "--old-src", type=Path, required=True, help="src/ of the version to compare with"
    )
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    runs: dict[str, list[dict]] = {"old": [], "new": []}
    for _ in range(args.reps):
        for name, src in (("old", args.old_src), ("new", ROOT / "src")):
            env = {**os.environ, "PYTHONPATH": str(src), "OMP_WAIT_POLICY": "PASSIVE"}
            done = subprocess.run([sys.executable, "-c", CHILD, str(args.folder)], env=env,
                                  capture_output=True, text=True)  # fmt: skip
            if done.returncode:
                print(done.stderr[-2000:], file=sys.stderr)
                return 1
            runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(name, runs[name][-1], flush=True)
    for key in ("load", "features", "rss_gib"):
        old = statistics.median(r[key] for r in runs["old"])
        new = statistics.median(r[key] for r in runs["new"])
        print(f"{key:<9} old {old:>7} new {new:>7} new/old {new / old:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
