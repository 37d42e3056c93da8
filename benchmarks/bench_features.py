"""Features: `load_crm`, `fit_spec` and `build_features` on the synthetic CRM, with peak memory.

    .venv/bin/python benchmarks/bench_features.py                 # 1M leads, 20M events
    .venv/bin/python benchmarks/bench_features.py --quick         # 3,000 leads: a smoke run
    .venv/bin/python benchmarks/bench_features.py --no-breakdown  # without the parts

`leadml.synth.make_crm(--leads, --seed)` written as Parquet (once, cached in --work), then in a
child process: `dataset.load_crm`, `features.fit_spec` and `features.build_features` as of
`labels.crm_cutoff(data, 30)`. `--breakdown` (on by default) also times title normalisation,
category codes and engagement one by one, and splits `load_crm` into reading and the per-row
event string normalisation (against the same result computed on the categories).
Aim at 1M leads: features <= 90 s and <= 6 GiB peak.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import fixtures
import measure
import runner
from measure import gib, hwm_bytes, say, timed

NAME = "features"
DEFAULT = True
QUICK: dict = {}
HORIZON_DAYS = 30
AIM_SECONDS = 90.0  # features for 1M leads / 20M events
AIM_PEAK_GIB = 6.0


def add_options(p: argparse._ArgumentGroup) -> None:
    p.add_argument(
        "--breakdown",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="features: also time build_features' parts one by one",
    )


def _features_child(folder: str, breakdown: bool) -> dict:
    import numpy as np

    from leadml import dataset, engagement, features, fit_features, labels
    from leadml.config import TrainConfig

    out: dict = {}
    with timed(out, "load_s"):
        data = dataset.load_crm(Path(folder))
    out["load_peak_gib"] = gib(hwm_bytes())
    out["rss_after_load_gib"] = gib(measure.rss_bytes())
    out["peak_reset"] = measure.reset_peak()
    as_of = labels.crm_cutoff(data, HORIZON_DAYS)
    config = TrainConfig()
    with timed(out, "fit_spec_s"):
        spec = features.fit_spec(data, config)
    with timed(out, "build_s"):
        feats = features.build_features(data.leads, data.events, spec, as_of=as_of)
    out["features_s"] = round(out["fit_spec_s"] + out["build_s"], 2)
    out["features_peak_gib"] = gib(hwm_bytes()) if out["peak_reset"] else None
    # clear_refs also resets ru_maxrss, so the process peak is the larger of the two windows
    out["process_peak_gib"] = max(out["load_peak_gib"] or 0, gib(measure.peak_rss_bytes()) or 0)
    out["as_of"] = str(as_of)
    out["rows"] = int(len(feats.X))
    out["columns"] = int(feats.X.shape[1])
    out["leads"] = int(len(data.leads))
    out["events"] = int(len(data.events))
    when = data.events["occurred_at"].to_numpy("datetime64[ns]")
    age = as_of.to_datetime64() - when
    window = np.timedelta64(spec.observation_days, "D")
    out["events_in_window"] = int(((age > np.timedelta64(0, "ns")) & (age <= window)).sum())
    out["rejects"] = len(data.rejects) + len(feats.rejects)
    if breakdown:  # where build_features spends its time (private helpers, timed one by one)
        parts: dict = {}
        cut = np.full(len(data.leads), as_of.to_datetime64().astype("datetime64[ns]"))
        with timed(parts, "fit_columns_s"):
            fit_cols = fit_features.crm_fit_columns(data.leads)
        with timed(parts, "title_normalise_s"):
            fit_features.normalise_seniority(data.leads["job_title"])
            fit_features.normalise_department(data.leads["job_title"])
        with timed(parts, "category_codes_s"):
            for name, series in fit_cols.items():
                fit_features.codes(series, spec.categories[name])
        with timed(parts, "engagement_s"):
            engagement.engagement(data.leads, data.events, cut, spec)
        out["breakdown"] = parts
        del data, feats, fit_cols
        out["load_breakdown"] = _load_breakdown(Path(folder))
    return out


def _load_breakdown(folder: Path) -> dict:
    """Where load_crm's time goes: reading, and the per-row event string normalisation.

    The normalisation steps mirror `dataset._load_events` as of commit 6d8f73c (strip and
    lower-case every event's type and page as strings, then build categoricals from object
    arrays), next to the same result computed on the categories instead of the rows.
    """
    import numpy as np
    import pandas as pd

    from leadml import contract, dataset

    parts: dict = {}
    measure.reset_peak()
    with timed(parts, "read_events_parquet_s"):
        events = pd.read_parquet(dataset._table_file(folder, "events"))
    parts["peak_gib_after_read"] = gib(hwm_bytes())
    with timed(parts, "per_row_strip_lower_s"):
        etype = events["event_type"].astype("string").str.strip().str.lower()
        page = events["page"].astype("string").str.strip().str.lower().fillna("")
    with timed(parts, "per_row_to_object_arrays_s"):
        e_obj, p_obj = etype.to_numpy(), page.to_numpy()
    with timed(parts, "per_row_categoricals_s"):
        rows = pd.Categorical(e_obj, categories=contract.EVENT_TYPES)
        pd.Categorical(p_obj, categories=("", *contract.PAGE_KINDS))
    parts["per_row_total_s"] = round(sum(v for k, v in parts.items() if k.startswith("per_row")), 2)
    parts["peak_gib_after_per_row"] = gib(hwm_bytes())
    del etype, page, e_obj, p_obj
    with timed(parts, "on_categories_s"):  # the same event_type result from the categories
        cat = events["event_type"].astype("category")
        names = pd.Series(cat.cat.categories.astype(str)).str.strip().str.lower()
        mapping = np.append(pd.Index(contract.EVENT_TYPES).get_indexer(names), -1)
        by_categories = pd.Categorical.from_codes(
            mapping[cat.cat.codes.to_numpy()], categories=contract.EVENT_TYPES
        )
    parts["same_result"] = bool(np.array_equal(by_categories.codes, rows.codes))
    return parts


def run(args: argparse.Namespace) -> dict:
    folder, data_info = fixtures.ensure_crm(
        args.work, args.leads, args.seed, args.events_per_lead, args.regen
    )
    say(f"[features] load_crm + fit_spec + build_features on {folder.name} in a child process ...")
    out = measure.run_child(_features_child, str(folder), args.breakdown)
    if measure.failed("features", out):
        return out
    out["generate"] = data_info
    say(
        f"[features] {out['leads']:,} leads, {out['events']:,} events ({out['events_in_window']:,} inside the window before {out['as_of']})"
    )
    say(
        f"[features] load_crm        {out['load_s']:7.2f} s   (peak {out['load_peak_gib']} GiB, {out['rss_after_load_gib']} GiB held after)"
    )
    say(f"[features] fit_spec        {out['fit_spec_s']:7.2f} s")
    say(
        f"[features] build_features  {out['build_s']:7.2f} s   -> {out['rows']:,} rows x {out['columns']} columns"
    )
    peak = out["features_peak_gib"]
    peak = out["process_peak_gib"] if peak is None else peak
    say(
        f"[features] features total  {out['features_s']:7.2f} s   peak RSS {peak} GiB during features, {out['process_peak_gib']} GiB whole process"
    )
    for k, v in out.get("load_breakdown", {}).items():
        say(f"[features]   load_crm breakdown {k:<28} {v}")
    for k, v in out.get("breakdown", {}).items():
        say(f"[features]   breakdown {k:<20} {v:7.2f} s")
    full = out["leads"] >= 1_000_000
    out["aim_seconds_met"] = out["features_s"] <= AIM_SECONDS if full else None
    out["aim_peak_met"] = out["process_peak_gib"] <= AIM_PEAK_GIB if full else None
    if full:
        say(
            f"[features] aim <= {AIM_SECONDS:.0f} s: {measure.fmt(out['aim_seconds_met'])}; aim <= {AIM_PEAK_GIB:.0f} GiB (whole process): {measure.fmt(out['aim_peak_met'])}"
        )
    return out


def markdown(f: dict) -> list[str]:
    rows = [
        ("leads = feature rows", f["rows"]),
        ("events", f["events"]),
        ("events inside the 180-day window", f["events_in_window"]),
        ("load_crm (s)", f["load_s"]),
        ("fit_spec (s)", f["fit_spec_s"]),
        ("build_features (s)", f["build_s"]),
        ("features = fit_spec + build_features (s)", f["features_s"]),
        ("peak RSS during load_crm (GiB)", f["load_peak_gib"]),
        ("peak RSS during features (GiB)", f["features_peak_gib"]),
        ("peak RSS whole child (GiB)", f["process_peak_gib"]),
        *((f"breakdown: {k}", v) for k, v in f.get("breakdown", {}).items()),
        *((f"load_crm breakdown: {k}", v) for k, v in f.get("load_breakdown", {}).items()),
        ("others (cores)", runner.contended(f)),
        ("aim <= 90 s met", f["aim_seconds_met"]),
        ("aim <= 6 GiB met", f["aim_peak_met"]),
    ]
    return runner.md_table("features", rows)


if __name__ == "__main__":
    sys.exit(runner.main([sys.modules[__name__]]))
