"""Grades: do fit x engagement, temperature, stage and PQL order conversion as they should?

    .venv/bin/python benchmarks/bench_grades.py            # 20,000 synthetic leads + X Education
    .venv/bin/python benchmarks/bench_grades.py --quick    # 3,000 synthetic leads

Trains on the synthetic world (seed 42; the test slice is the generator's cut-off, outcomes
in the next 30 days) and on X Education (flat, data/configs/xeducation.yaml), and prints
`grades_backtest.ordering_checks` for each: A > B > C > D pooled over engagement, 1 > 2 > 3 > 4
pooled over fit, A1 >= 3 x D4, hot > warm > cold, BoFu > MoFu > ToFu, PQL above the MQL band
(groups of 30+ leads; a check the data cannot make is said so). Also the share of training
time the grades take (their step against the whole fit, same run).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import runner
from fixtures import ROOT
from measure import say

NAME = "grades"
DEFAULT = True
QUICK = {"grades_leads": 3000}
XEDUCATION = ROOT.parent / "shared" / "datasets" / "xeducation_leads.csv"
XED_CONFIG = ROOT / "data" / "configs" / "xeducation.yaml"


def add_options(p: argparse._ArgumentGroup) -> None:
    p.add_argument(
        "--grades-leads", type=int, default=20_000, help="grades: synthetic leads (seed 42)"
    )


def _one(name: str, data: Path, config) -> dict:
    from leadml import grades_backtest
    from leadml.train import fit

    result, _ = fit(data, config, progress=False)
    seconds = result.data_summary["seconds"]
    checks = grades_backtest.ordering_checks(result.grades)
    notes = (result.scorer.card.get("grades") or {}).get("notes", {})
    out = {
        "test_leads": result.metrics["leads"],
        "roc_auc": round(result.metrics["roc_auc"], 4),
        "fit_s": round(sum(seconds.values()), 2),
        "grades_s": round(seconds.get("grades", 0.0), 2),
        "checks": checks,
        "not_made": notes,
    }
    share = out["grades_s"] / out["fit_s"] if out["fit_s"] else 0.0
    say(
        f"[grades] {name}: {out['test_leads']:,} test leads, AUC {out['roc_auc']:.4f}; grades "
        f"{out['grades_s']:.1f} s of {out['fit_s']:.1f} s training ({share:.0%})"
    )
    for c in checks:
        say(f"[grades]   {'ok  ' if c['ok'] else 'FAIL'} {c['check']:<36} {c['observed']}")
    for label, note in notes.items():
        say(f"[grades]   n/a  {label}: {note}")
    return out


def run(args: argparse.Namespace) -> dict:
    from leadml import synth
    from leadml.config import TrainConfig

    out: dict = {}
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        data = Path(tmp) / "crm"
        synth.write_crm(synth.make_crm(args.grades_leads, 42), data)
        config = TrainConfig.model_validate({"model": {"baseline": False}})
        out["synthetic"] = _one(f"synthetic {args.grades_leads:,} leads", data, config)
    if XEDUCATION.exists() and not args.quick:
        out["xeducation"] = _one("X Education", XEDUCATION, TrainConfig.from_yaml(XED_CONFIG))
    else:
        say(f"[grades] X Education: {'skipped (--quick)' if args.quick else 'not on this machine'}")
    return out


def markdown(d: dict) -> list[str]:
    rows: list[tuple[str, object]] = []
    for name, r in d.items():
        passed = sum(c["ok"] for c in r["checks"])
        rows.append((f"{name}: checks passed", f"{passed} of {len(r['checks'])}"))
        rows += [
            (f"{name}: {c['check']}", f"{'ok' if c['ok'] else 'FAIL'}: {c['observed']}")
            for c in r["checks"]
        ]
        rows.append((f"{name}: grades step / training (s)", f"{r['grades_s']} / {r['fit_s']}"))
    return runner.md_table("grades", rows)


if __name__ == "__main__":
    sys.exit(runner.main([sys.modules[__name__]]))
