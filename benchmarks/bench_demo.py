"""Demo: the README's three commands on the installed venv, each timed; optionally a fresh venv.

    .venv/bin/python benchmarks/bench_demo.py                 # 20,000 leads
    .venv/bin/python benchmarks/bench_demo.py --quick         # 3,000 leads: a smoke run
    .venv/bin/python benchmarks/bench_demo.py --fresh-venv    # + `make install` + `make demo`

In a fresh LEADML_HOME (a temp dir, also the cwd; the caller's MLFLOW_/LEADML_ variables left
out): `leadml synth --out data/sample --leads N`, `leadml train --data data/sample` (with
MLflow), `leadml score --data data/sample --out out/sample_scores.csv`. With --fresh-venv:
copies the working tree (without .venv, .git, generated data) and times `make install` (venv +
`pip install -e .[dev]`) and then `make demo`. Figures: seconds per command (information).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import fixtures
import measure
import runner
from fixtures import ROOT
from measure import say

NAME = "demo"
DEFAULT = True
QUICK: dict = {}
TRAIN_LINES = ("roc_auc", "ece")  # lines of `leadml train` worth repeating


def add_options(p: argparse._ArgumentGroup) -> None:
    p.add_argument(
        "--fresh-venv",
        action="store_true",
        help="demo: also time `make install` + `make demo` in a copy of the tree (fresh venv, pip)",
    )


def run(args: argparse.Namespace) -> dict:
    work = args.work
    home = Path(tempfile.mkdtemp(prefix="demo_", dir=work))
    env = fixtures.scratch_env(home)
    leadml = str(Path(sys.executable).with_name("leadml"))
    n = str(args.demo_leads)
    steps = {
        "synth": [leadml, "synth", "--out", "data/sample", "--leads", n],
        "train": [leadml, "train", "--data", "data/sample"],
        "score": [leadml, "score", "--data", "data/sample", "--out", "out/sample_scores.csv"],
    }
    out: dict = {"leads": args.demo_leads, "home": str(home)}
    say(f"[demo] LEADML_HOME={home}")
    for name, cmd in steps.items():
        usage: dict = {}
        secs, stdout = measure.run_command(cmd, home, env, home / f"{name}.log", usage)
        out[f"{name}_s"] = secs
        out[f"{name}_cpu"] = usage["cpu"]
        say(f"[demo] leadml {name:<5} {secs:7.2f} s")
        if name == "train":
            for line in stdout.splitlines():
                if line.split(" ")[0] in TRAIN_LINES or line.startswith(
                    ("test slice", "trained in")
                ):
                    say(f"[demo]   {line}")
    out["total_s"] = round(out["synth_s"] + out["train_s"] + out["score_s"], 2)
    say(f"[demo] total        {out['total_s']:7.2f} s")
    measure.drop_temp(home)
    if args.fresh_venv:
        out["fresh"] = fresh_make_demo(work)
    return out


def _copy_ignore(directory: str, names: list[str]) -> set[str]:
    skip = {
        ".venv",
        ".git",
        "_work",
        "mlruns",
        "mlartifacts",
        "out",
        "__pycache__",
        ".pytest_cache",
        ".ruff_cache",
    }
    here = Path(directory).resolve()
    gone = {n for n in names if n in skip or n.endswith(".egg-info")}
    if here in (ROOT / "data", ROOT / "models"):
        gone |= {n for n in names if n != "README.md"}
    return gone


def fresh_make_demo(work: Path) -> dict:
    """`make install` + `make demo` in a copy of the working tree: a fresh venv, pip from the local index."""
    tmp = Path(tempfile.mkdtemp(prefix="fresh_", dir=work))
    repo = tmp / "repo"
    shutil.copytree(ROOT, repo, ignore=_copy_ignore)
    env = {k: v for k, v in fixtures.scratch_env().items() if not k.startswith("VIRTUAL_ENV")}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    out: dict = {"repo": str(repo)}
    say(f"[demo] fresh copy in {repo}: make install (venv + pip install -e .[dev]) ...")
    for target, note in (("install", ""), ("demo", " (venv already there)")):
        usage: dict = {}
        log = tmp / f"make-{target}.log"
        out[f"make_{target}_s"], _ = measure.run_command(["make", target], repo, env, log, usage)
        out[f"make_{target}_cpu"] = usage["cpu"]
        say(f"[demo] make {target:<9}{out[f'make_{target}_s']:7.2f} s{note}")
    out["total_s"] = round(out["make_install_s"] + out["make_demo_s"], 2)
    say(f"[demo] fresh `make demo` total {out['total_s']:7.2f} s")
    measure.drop_temp(tmp)
    return out


def markdown(d: dict) -> list[str]:
    rows: list[tuple[str, object]] = [("leads", d["leads"])]
    for step in ("synth", "train", "score"):
        others = d[f"{step}_cpu"]["others_cores"]
        rows.append((f"leadml {step} (s)", f"{d[f'{step}_s']:.2f} (others {others:.2f})"))
    rows.append(("total (s)", d["total_s"]))
    if "fresh" in d:
        fr = d["fresh"]
        for target in ("install", "demo"):
            others = fr[f"make_{target}_cpu"]["others_cores"]
            secs = fr[f"make_{target}_s"]
            rows.append((f"fresh copy: make {target} (s)", f"{secs:.2f} (others {others:.2f})"))
        rows.append(("fresh copy: total (s)", fr["total_s"]))
    return runner.md_table("demo", rows)


if __name__ == "__main__":
    sys.exit(runner.main([sys.modules[__name__]]))
