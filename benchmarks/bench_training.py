"""Training: `leadml.train.fit` on the synthetic CRM, its steps, and the cost of MLflow.

    .venv/bin/python benchmarks/bench_training.py                       # 1M leads
    .venv/bin/python benchmarks/bench_training.py --quick               # 3,000 leads: a smoke run
    .venv/bin/python benchmarks/bench_training.py --train-profile always

In a child: `leadml.train.fit(folder, TrainConfig())` (everything but MLflow); the model is
saved in --work for the scoring subject. `--train-profile always` (default `auto`: only when
the aim is missed) reruns `fit` and prints the seconds it records per step. `--mlflow-reps N`
times `fit` against `train` (MLflow run, registry, promotion, export) on the --demo-leads
sample, alternating. Aim at 1M leads: `fit` <= 180 s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import fixtures
import measure
import runner
from measure import fmt, gib, say, timed

NAME = "training"
DEFAULT = True
QUICK = {"mlflow_reps": 1}
AIM_SECONDS = 180.0  # leadml.train.fit on 1M leads


def add_options(p: argparse._ArgumentGroup) -> None:
    p.add_argument(
        "--train-profile",
        choices=["auto", "always", "never"],
        default="auto",
        help="training: time fit's steps one by one (auto: when 1M training misses its aim)",
    )
    p.add_argument(
        "--mlflow-reps",
        type=int,
        default=2,
        help="training: fit vs train-with-MLflow repetitions on the demo-size sample (0: skip)",
    )


def _train_child(folder: str, save_to: str | None) -> dict:
    from leadml.config import TrainConfig
    from leadml.train import fit

    out: dict = {}
    with timed(out, "fit_s"):
        result, _files = fit(Path(folder), TrainConfig(), progress=False)
    out["peak_rss_gib"] = gib(measure.peak_rss_bytes())
    d = result.data_summary
    for key in ("rows", "leads", "events", "cutoffs", "slices", "features", "best_iteration"):
        out[key] = d[key]
    out |= {
        "calibration": d["calibration"],
        "split": d["split"],
        "metrics": result.metrics,
        "baseline": result.baseline,
        "bayes": result.bayes,
        "warnings": result.warnings,
    }
    if save_to:
        result.scorer.save(save_to)
        out["model"] = save_to
    return out


def _train_profile_child(folder: str) -> dict:
    """`leadml.train.fit` once more, reading the seconds it records per step (data_summary)."""
    from leadml.config import TrainConfig
    from leadml.train import fit

    result, _files = fit(Path(folder), TrainConfig(), progress=False)
    d = result.data_summary
    t = d["seconds"]
    rounds = int(result.scorer.booster.current_iteration())
    return {
        "steps_s": t,
        "total_s": round(sum(t.values()), 2),
        "rounds": rounds,
        "best_iteration": int(d["best_iteration"]),
        "boosting_s_per_round": round(t["boosting"] / max(rounds, 1), 4),
        "train_rows": int(d["slices"]["train"]),
        "peak_rss_gib": gib(measure.peak_rss_bytes()),
    }


def _mlflow_child(folder: str, home: str, reps: int) -> dict:
    """fit() against train() with MLflow logging/registration on the same (small) data, alternating."""
    from leadml.config import Settings, TrainConfig
    from leadml.train import fit, train

    settings = Settings.from_env(home=home)
    out: dict = {"fit_s": [], "train_s": []}
    for _ in range(reps):
        t0 = time.perf_counter()
        fit(Path(folder), TrainConfig(), progress=False)
        out["fit_s"].append(round(time.perf_counter() - t0, 2))
        t0 = time.perf_counter()
        train(Path(folder), TrainConfig(), settings, progress=False)
        out["train_s"].append(round(time.perf_counter() - t0, 2))
    return out


def run(args: argparse.Namespace) -> dict:
    work = args.work
    folder, _ = fixtures.ensure_crm(work, args.leads, args.seed, args.events_per_lead, args.regen)
    model_dir = fixtures.model_dir(work, args.leads, args.seed, args.events_per_lead)
    say(f"[train] leadml.train.fit on {folder.name} (no MLflow) in a child process ...")
    out = measure.run_child(_train_child, str(folder), str(model_dir))
    if measure.failed("train", out):
        return out
    m, b, o = out["metrics"], out["baseline"] or {}, out["bayes"] or {}
    say(f"[train] fit {out['fit_s']:.2f} s, peak RSS {out['peak_rss_gib']} GiB")
    say(
        f"[train] {out['rows']:,} rows from {out['leads']:,} leads at cut-offs {', '.join(out['cutoffs'])}"
    )
    say("[train] slices: " + ", ".join(f"{k} {v:,}" for k, v in out["slices"].items()))
    say(
        f"[train] best_iteration {out['best_iteration']}, calibration {out['calibration']}, {out['features']} features"
    )
    say(
        f"[train] test AUC {m['roc_auc']:.4f} (baseline {fmt(b.get('roc_auc'), 4)}, Bayes {fmt(o.get('roc_auc'), 4)}), ECE {m['ece']:.4f}, log loss {m['log_loss']:.4f} (Bayes {fmt(o.get('log_loss'), 4)})"
    )
    for w in out["warnings"]:
        say(f"[train] warning: {w}")
    full = args.leads >= 1_000_000
    out["aim_seconds_met"] = out["fit_s"] <= AIM_SECONDS if full else None
    if full:
        say(f"[train] aim <= {AIM_SECONDS:.0f} s: {fmt(out['aim_seconds_met'])}")
    missed = full and not out["aim_seconds_met"]
    if args.train_profile == "always" or (args.train_profile == "auto" and missed):
        say("[train] profiling: the seconds fit records per step, in a child process ...")
        prof = measure.run_child(_train_profile_child, str(folder))
        if not measure.failed("train profile", prof):
            out["profile"] = prof
            for k, v in prof["steps_s"].items():
                say(f"[train]   {k:<15} {v:8.2f} s")
            say(
                f"[train]   {'total':<15} {prof['total_s']:8.2f} s; {prof['rounds']} rounds on {prof['train_rows']:,} rows, {prof['boosting_s_per_round']} s/round"
            )
    if args.mlflow_reps:
        small, _ = fixtures.ensure_crm(
            work, args.demo_leads, args.seed, args.events_per_lead, args.regen
        )
        home = tempfile.mkdtemp(prefix="mlflow_", dir=work)
        say(
            f"[train] MLflow overhead on {small.name}: fit vs train (logging + registry), {args.mlflow_reps} rep(s), alternating ..."
        )
        ml = measure.run_child(_mlflow_child, str(small), home, args.mlflow_reps)
        if not measure.failed("train mlflow", ml):
            out["mlflow"] = ml
            say(f"[train]   fit   {ml['fit_s']} s")
            say(f"[train]   train {ml['train_s']} s (the first one also creates the sqlite store)")
            measure.drop_temp(Path(home))
    return out


def markdown(t: dict) -> list[str]:
    f4, contended = runner.f4, runner.contended
    rows: list[tuple[str, object]] = [
        ("rows (lead x cut-off)", t["rows"]),
        *((f"slice {k}", v) for k, v in t["slices"].items()),
        ("fit (s)", t["fit_s"]),
        ("others (cores)", contended(t)),
        ("peak RSS (GiB)", t["peak_rss_gib"]),
        ("best_iteration", t["best_iteration"]),
        ("test AUC", f4(t["metrics"]["roc_auc"])),
        ("baseline AUC", f4((t["baseline"] or {}).get("roc_auc"))),
        ("Bayes AUC", f4((t["bayes"] or {}).get("roc_auc"))),
        ("test ECE", f4(t["metrics"]["ece"])),
        ("aim <= 180 s met", t["aim_seconds_met"]),
    ]
    if "profile" in t:
        rows += [(f"profile: {k} (s)", v) for k, v in t["profile"]["steps_s"].items()]
        rows += [("profile: others (cores)", contended(t["profile"]))]
    if "mlflow" in t:
        ml = t["mlflow"]
        rows += [
            ("20k sample: fit (s)", ", ".join(map(str, ml["fit_s"]))),
            ("20k sample: train with MLflow (s)", ", ".join(map(str, ml["train_s"]))),
            ("20k sample: others (cores)", contended(ml)),
        ]
    return runner.md_table("train", rows)


if __name__ == "__main__":
    sys.exit(runner.main([sys.modules[__name__]]))
