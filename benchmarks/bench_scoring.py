"""Scoring in process: `LeadScorer.score_features` against a bare `Booster.predict`, and `score_file`.

    .venv/bin/python benchmarks/bench_scoring.py              # 1M leads
    .venv/bin/python benchmarks/bench_scoring.py --quick      # 3,000 leads: a smoke run

The model is the one the training subject saved for these sizes, or one fitted on the
--demo-leads sample. In a child: features of all leads at the scoring cut-off (as `leadml
score` does), `X = feats.X.to_numpy(float64)`, then --score-reps alternating repetitions of
(a) `scorer.booster.predict(X, num_threads=0)` and (b) `scorer.score_features(X)`
(probability, score, band), in the same process so machine noise hits both alike; then, in
another child, `leadml.score.score_file` end to end (read, features, score, write CSV).
Aim: the ratio of the medians (b)/(a) >= 0.7. The HTTP service is bench_serving.py.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import fixtures
import measure
import runner
from measure import say, timed

NAME = "scoring"
DEFAULT = True
QUICK = {"score_reps": 2}
AIM_RATIO = 0.7  # score_features rows/s over bare Booster.predict rows/s


def add_options(p: argparse._ArgumentGroup) -> None:
    p.add_argument(
        "--score-reps", type=int, default=6, help="scoring: alternating repetitions of each side"
    )


def trees(booster) -> int:
    """Trees used for prediction (a booster read from a file reports best_iteration -1)."""
    best = booster.best_iteration
    return int(best if best and best > 0 else booster.current_iteration())


def _rows_per_s(n: int, secs: list[float]) -> int:
    return round(n / statistics.median(secs))


def _score_child(folder: str, model: str, reps: int) -> dict:
    import numpy as np

    from leadml import dataset, features
    from leadml import score as sc
    from leadml.model import LeadScorer

    out: dict = {}
    scorer = LeadScorer.load(model)
    data = dataset.load_crm(Path(folder), require_outcome=False)
    cut = sc.latest(data)
    with timed(out, "features_s"):
        feats = features.build_features(data.leads, data.events, scorer.spec, as_of=cut)
    X = feats.X.to_numpy(np.float64)
    n = X.shape[0]
    layout = "C" if X.flags.c_contiguous else "F" if X.flags.f_contiguous else "strided"
    out |= {"rows": int(n), "columns": int(X.shape[1]), "layout": layout}
    out["trees"] = trees(scorer.booster)
    booster = scorer.booster
    # warm up both paths once (page faults, thread pools), then alternate
    booster.predict(X[:1000], num_threads=0)
    scorer.score_features(X[:1000])
    secs = measure.alternate(
        {
            "bare": lambda: booster.predict(X, num_threads=0),
            "full": lambda: scorer.score_features(X),
        },
        reps,
    )
    bare, full = secs["bare"], secs["full"]
    # the DataFrame path LeadScorer.score_leads takes (information)
    frame = measure.alternate({"frame": lambda: scorer.score_features(feats.X)}, max(1, reps // 2))
    frame_s = frame["frame"]
    out["bare_s"] = [round(x, 3) for x in bare]
    out["score_features_s"] = [round(x, 3) for x in full]
    out["score_features_frame_s"] = [round(x, 3) for x in frame_s]
    out["bare_rows_per_s"] = _rows_per_s(n, bare)
    out["score_features_rows_per_s"] = _rows_per_s(n, full)
    out["score_features_frame_rows_per_s"] = _rows_per_s(n, frame_s)
    out["ratio"] = round(statistics.median(bare) / statistics.median(full), 3)
    out["ratio_per_rep"] = [round(a / b, 3) for a, b in zip(bare, full, strict=True)]
    if not X.flags.c_contiguous:  # information: does the matrix layout matter to LightGBM?
        Xc = np.ascontiguousarray(X)
        c_order = measure.alternate(
            {"c": lambda: booster.predict(Xc, num_threads=0)}, max(1, reps // 2)
        )
        out["bare_c_order_rows_per_s"] = _rows_per_s(n, c_order["c"])
    return out


def _score_file_child(folder: str, model: str, out_file: str, home: str) -> dict:
    import time

    from leadml.config import Settings
    from leadml.score import score_file

    settings = Settings.from_env(home=home)
    t0 = time.perf_counter()
    s = score_file(Path(folder), Path(out_file), settings, model_uri=model)
    secs = time.perf_counter() - t0
    return {
        "score_file_s": round(secs, 2),
        "rows": s.scored,
        "rows_per_s": round(s.scored / secs),
        "peak_rss_gib": measure.gib(measure.peak_rss_bytes()),
        "bands": s.bands,
    }


def run(args: argparse.Namespace) -> dict:
    work = args.work
    folder, _ = fixtures.ensure_crm(work, args.leads, args.seed, args.events_per_lead, args.regen)
    model_dir = fixtures.model_dir(work, args.leads, args.seed, args.events_per_lead)
    if not (model_dir / "scorer.json").exists():
        say("[score] no model from the training subject for these sizes")
        model_dir = fixtures.ensure_model(
            work, args.demo_leads, args.seed, args.events_per_lead, args.regen
        )
    out: dict = {"model": str(model_dir)}
    say(
        f"[score] bare Booster.predict vs LeadScorer.score_features on {folder.name}, {args.score_reps} alternating reps, in a child process ..."
    )
    res = measure.run_child(_score_child, str(folder), str(model_dir), args.score_reps)
    if measure.failed("score", res):
        return res
    out |= res
    say(
        f"[score] X: {res['rows']:,} x {res['columns']} float64 ({res['layout']}-order), model with {res['trees']} trees; features took {res['features_s']} s"
    )
    say(
        f"[score] (a) booster.predict(X)      {res['bare_rows_per_s']:>12,} rows/s  {res['bare_s']}"
    )
    say(
        f"[score] (b) scorer.score_features(X) {res['score_features_rows_per_s']:>12,} rows/s  {res['score_features_s']}"
    )
    say(
        f"[score]     score_features(DataFrame) {res['score_features_frame_rows_per_s']:>11,} rows/s  {res['score_features_frame_s']} (information)"
    )
    if "bare_c_order_rows_per_s" in res:
        say(
            f"[score]     booster.predict(C-order copy) {res['bare_c_order_rows_per_s']:>8,} rows/s (information)"
        )
    out["aim_ratio_met"] = res["ratio"] >= AIM_RATIO
    say(
        f"[score] ratio (b)/(a) {res['ratio']:.3f} (per rep {res['ratio_per_rep']}); aim >= {AIM_RATIO}: {measure.fmt(out['aim_ratio_met'])}"
    )
    home = tempfile.mkdtemp(prefix="score_", dir=work)
    say(
        "[score] end-to-end leadml.score.score_file (read, features, score, write CSV) in a child process ..."
    )
    scores = str(Path(home) / "scores.csv")
    e2e = measure.run_child(_score_file_child, str(folder), str(model_dir), scores, home)
    if not measure.failed("score_file", e2e):
        out["score_file"] = e2e
        say(
            f"[score] score_file {e2e['rows']:,} rows in {e2e['score_file_s']} s = {e2e['rows_per_s']:,} rows/s, peak {e2e['peak_rss_gib']} GiB"
        )
        measure.drop_temp(Path(home))
    return out


def markdown(s: dict) -> list[str]:
    rows: list[tuple[str, object]] = [
        ("rows x columns", f"{s['rows']:,} x {s['columns']} ({s['layout']}-order float64)"),
        ("trees", s["trees"]),
        ("(a) Booster.predict rows/s", s["bare_rows_per_s"]),
        ("(b) score_features rows/s", s["score_features_rows_per_s"]),
        ("ratio (b)/(a), medians", f"{s['ratio']:.3f}"),
        ("ratio per repetition", ", ".join(map(str, s["ratio_per_rep"]))),
        ("score_features(DataFrame) rows/s", s["score_features_frame_rows_per_s"]),
        ("others (cores)", runner.contended(s)),
        ("aim >= 0.7 met", s["aim_ratio_met"]),
    ]
    if "bare_c_order_rows_per_s" in s:
        rows.append(("Booster.predict on a C-order copy rows/s", s["bare_c_order_rows_per_s"]))
    if "score_file" in s:
        e = s["score_file"]
        rows += [
            ("score_file end-to-end (s)", e["score_file_s"]),
            ("score_file rows/s", e["rows_per_s"]),
            ("score_file peak RSS (GiB)", e["peak_rss_gib"]),
            ("score_file others (cores)", runner.contended(e)),
        ]
    return runner.md_table("score", rows)


if __name__ == "__main__":
    sys.exit(runner.main([sys.modules[__name__]]))
