"""leadml benchmarks: wall time, peak memory and model quality, printed as they are measured.

    .venv/bin/python benchmarks/run.py                        # every section, full size (1M leads)
    .venv/bin/python benchmarks/run.py --only demo,score --leads 20000   # a quick smoke run

Sections (see benchmarks/README.md): demo, features, train, score, xeducation, and on request
contention (LightGBM next to a competing process). Heavy steps run
in a fresh child process each (multiprocessing "spawn"), so the peak RSS reported is that
step's own and not the benchmark driver's. Ratios (scoring against a bare Booster.predict)
are measured in the same process, alternating, so machine noise hits both sides alike.
Scratch data goes to benchmarks/_work/ (git-ignored); figures also go to
benchmarks/_work/results.json and results.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WORK = ROOT / "benchmarks" / "_work"
SECTIONS = ("demo", "features", "train", "score", "xeducation")
EXTRA_SECTIONS = ("contention",)  # only when named in --only
XEDUCATION = Path("/work/shared/datasets/xeducation_leads.csv")
XED_TARGET = "Converted"
XED_DROP = [
    "Prospect ID", "Lead Number", "Tags", "Lead Quality", "Lead Profile",
    "Asymmetrique Activity Index", "Asymmetrique Profile Index", "Asymmetrique Activity Score",
    "Asymmetrique Profile Score", "Last Notable Activity",
]  # fmt: skip
HORIZON_DAYS = 30
AIMS = {
    "features_seconds": 90.0,  # features for 1M leads / 20M events
    "features_peak_gib": 6.0,
    "train_seconds": 180.0,  # leadml.train.fit on 1M leads
    "score_ratio": 0.7,  # score_features rows/s over bare Booster.predict rows/s
    "xeducation_auc": 0.91,
    "xeducation_ece": 0.02,
}
GIB = 1024**3


# ----------------------------------------------------------------------------- helpers


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _status_bytes(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def rss_bytes() -> int | None:
    return _status_bytes("VmRSS")


def hwm_bytes() -> int | None:
    """Peak RSS since the process started or since the last `reset_peak()`."""
    return _status_bytes("VmHWM")


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs); False if not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def gib(n: float | None) -> float | None:
    return None if n is None else round(n / GIB, 2)


@contextmanager
def timed(into: dict, key: str):
    t0 = time.perf_counter()
    try:
        yield
    finally:
        into[key] = round(time.perf_counter() - t0, 2)


def _child_main(conn, target: Callable, args: tuple) -> None:
    try:
        out = target(*args)
    except BaseException:  # the driver reports it and goes on with the next section
        out = {"error": traceback.format_exc()}
    conn.send(out)
    conn.close()


def _cpu_snapshot() -> tuple[float, float, float]:
    """(wall clock, busy CPU seconds of the whole machine, CPU seconds of this process and its children)."""
    vals = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    busy = sum(vals) - vals[3] - vals[4]  # all but idle and iowait
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    own = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    return time.perf_counter(), busy / os.sysconf("SC_CLK_TCK"), own


@contextmanager
def contention(into: dict):
    """Record how many cores other processes kept busy meanwhile (the machine is shared).

    `others_cores` near 0: the figures are this code's own; near or above 1 on 2 cores: another
    process competed for the CPU and every timing in the step is suspect.
    """
    w0, b0, o0 = _cpu_snapshot()
    try:
        yield
    finally:
        w1, b1, o1 = _cpu_snapshot()
        wall = max(w1 - w0, 1e-9)
        into["cpu"] = {
            "wall_s": round(wall, 2),
            "own_cores": round((o1 - o0) / wall, 2),
            "others_cores": round(max(b1 - b0 - (o1 - o0), 0.0) / wall, 2),
        }


# set from --quiet-wait by main(); read by run_child and the in-process steps
_SETTINGS: dict = {"quiet_wait": 0.0}


def wait_for_quiet(threshold: float = 0.25, window: float = 3.0, needed: int = 3) -> float:
    """Wait (at most --quiet-wait seconds) until other processes use < `threshold` cores for
    `needed` windows in a row; returns the seconds waited. A shared machine's neighbours
    (a test run, another benchmark) would otherwise be timed along with leadml."""
    max_wait = _SETTINGS["quiet_wait"]
    if max_wait <= 0:
        return 0.0
    t0, calm, told = time.perf_counter(), 0, False
    while time.perf_counter() - t0 < max_wait:
        usage: dict = {}
        with contention(usage):
            time.sleep(window)
        if usage["cpu"]["others_cores"] < threshold:
            calm += 1
            if calm >= needed:
                break
        else:
            calm = 0
            if not told:
                say(
                    f"    (waiting up to {max_wait:.0f} s for a quiet machine: others use {usage['cpu']['others_cores']} cores)"
                )
                told = True
    waited = round(time.perf_counter() - t0, 1)
    if told:
        say(f"    (waited {waited} s)")
    return waited


def run_child(target: Callable, *args, quiet_first: bool = True) -> dict:
    """Run `target(*args)` in a fresh interpreter and return its dict (or {"error": ...}).

    The dict gets a "cpu" entry: wall time, cores used by the child and by other processes.
    """
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child_main, args=(send, target, args))
    usage: dict = {}
    if quiet_first:
        wait_for_quiet()
    with contention(usage):
        proc.start()
        send.close()
        try:
            out = recv.recv()
        except EOFError:
            out = None
        proc.join()
    if out is None:
        out = {
            "error": f"child process died with exit code {proc.exitcode} (killed by the OOM killer?)"
        }
    out["cpu"] = usage["cpu"]
    busy = usage["cpu"]["others_cores"]
    if busy >= 0.2:
        say(f"    (other processes kept {busy} cores busy meanwhile: these timings are contended)")
    return out


def trees(booster) -> int:
    """Trees used for prediction (a booster read from a file reports best_iteration -1)."""
    best = booster.best_iteration
    return int(best if best and best > 0 else booster.current_iteration())


def say(msg: str = "") -> None:
    print(msg, flush=True)


def fmt(v, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def git_state() -> dict:
    """The commit measured and whether the library's sources differ from it (others edit them)."""

    def git(*cmd: str) -> str:
        res = subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True, check=False)
        return res.stdout.strip()

    return {
        "head": git("rev-parse", "--short", "HEAD"),
        "src_changes": git("status", "--porcelain", "src"),
    }


def machine_info() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = round(int(line.split()[1]) * 1024 / GIB, 1)
    except OSError:
        pass
    versions = {}
    for mod in ("leadml", "numpy", "pandas", "pyarrow", "lightgbm", "sklearn", "mlflow"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - informational only
            versions[mod] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


def drop_temp(args, path: Path) -> None:
    """Remove a step's temp dir (LEADML_HOME, scores, fresh copy) once it succeeded, unless --keep-temp."""
    if not args.keep_temp:
        shutil.rmtree(path, ignore_errors=True)


def _error(section: str, out: dict) -> bool:
    if "error" in out:
        say(f"[{section}] FAILED:\n{out['error']}")
        return True
    return False


# ----------------------------------------------------------------------------- data


def _generate_child(n_leads: int, seed: int, events_per_lead: float, folder: str) -> dict:
    from leadml import synth

    out: dict = {"leads": n_leads, "seed": seed, "events_per_lead_asked": events_per_lead}
    with timed(out, "generate_s"):
        result = synth.make_crm(n_leads, seed, events_per_lead=events_per_lead)
    with timed(out, "write_s"):
        synth.write_crm(result, folder, fmt="parquet")
    out["events"] = int(len(result.events))
    out["events_per_lead"] = round(len(result.events) / n_leads, 2)
    out["truth_rows"] = int(len(result.truth))
    out["peak_rss_gib"] = gib(peak_rss_bytes())
    out["bytes_on_disk"] = sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
    return out


def ensure_crm(
    work: Path, n_leads: int, seed: int, events_per_lead: float, regen: bool
) -> tuple[Path, dict]:
    """The synthetic CRM folder for this size (Parquet), generated once and reused."""
    folder = work / f"crm_{n_leads}_s{seed}_e{events_per_lead:g}"
    marker = folder / "bench-data.json"
    if marker.exists() and not regen:
        info = json.loads(marker.read_text())
        info["reused"] = True
        say(f"[data] reusing {folder} ({info['leads']:,} leads, {info['events']:,} events)")
        return folder, info
    if folder.exists():
        shutil.rmtree(folder)
    say(f"[data] generating {n_leads:,} leads (seed {seed}) into {folder} ...")
    info = run_child(_generate_child, n_leads, seed, events_per_lead, str(folder))
    if "error" in info:
        raise RuntimeError(info["error"])
    marker.write_text(json.dumps(info, indent=2))
    info["reused"] = False
    say(
        f"[data] {info['leads']:,} leads, {info['events']:,} events ({info['events_per_lead']}/lead), "
        f"generated in {info['generate_s']} s, written in {info['write_s']} s, peak {info['peak_rss_gib']} GiB"
    )
    return folder, info


# ----------------------------------------------------------------------------- demo


def _run_step(cmd: list[str], cwd: Path, env: dict, log: Path, usage: dict) -> tuple[float, str]:
    wait_for_quiet()
    t0 = time.perf_counter()
    with contention(usage):
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    secs = time.perf_counter() - t0
    if usage["cpu"]["others_cores"] >= 0.2:
        say(
            f"    (other processes kept {usage['cpu']['others_cores']} cores busy meanwhile: contended)"
        )
    log.write_text(
        f"$ {' '.join(map(str, cmd))}\n# exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, cmd))} failed with exit {proc.returncode}; see {log}\n{proc.stderr[-2000:]}"
        )
    return round(secs, 2), proc.stdout


def bench_demo(args, work: Path) -> dict:
    """The README's three commands on the installed venv, each timed; optionally a fresh `make demo`."""
    home = Path(tempfile.mkdtemp(prefix="demo_", dir=work))
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MLFLOW_TRACKING_URI", "LEADML_EXPORT_DIR", "LEADML_ARTIFACT_ROOT")
    }
    env["LEADML_HOME"] = str(home)
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
        secs, stdout = _run_step(cmd, home, env, home / f"{name}.log", usage)
        out[f"{name}_s"] = secs
        out[f"{name}_cpu"] = usage["cpu"]
        say(f"[demo] leadml {name:<5} {secs:7.2f} s")
        if name == "train":
            for line in stdout.splitlines():
                if (
                    line.split(" ")[0] in ("roc_auc", "ece")
                    or line.startswith("test slice")
                    or line.startswith("trained in")
                ):
                    say(f"[demo]   {line}")
    out["total_s"] = round(out["synth_s"] + out["train_s"] + out["score_s"], 2)
    say(f"[demo] total        {out['total_s']:7.2f} s")
    drop_temp(args, home)
    if args.fresh_venv:
        out["fresh"] = bench_fresh_make_demo(args, work)
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


def bench_fresh_make_demo(args, work: Path) -> dict:
    """`make install` + `make demo` in a copy of the working tree: a fresh venv, pip from the local index."""
    tmp = Path(tempfile.mkdtemp(prefix="fresh_", dir=work))
    repo = tmp / "repo"
    shutil.copytree(ROOT, repo, ignore=_copy_ignore)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LEADML_", "MLFLOW_", "VIRTUAL_ENV"))
    }
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    out: dict = {"repo": str(repo)}
    say(f"[demo] fresh copy in {repo}: make install (venv + pip install -e .[dev]) ...")
    usage: dict = {}
    out["make_install_s"], _ = _run_step(
        ["make", "install"], repo, env, tmp / "make-install.log", usage
    )
    out["make_install_cpu"] = usage["cpu"]
    say(f"[demo] make install  {out['make_install_s']:7.2f} s")
    out["make_demo_s"], _ = _run_step(["make", "demo"], repo, env, tmp / "make-demo.log", usage)
    out["make_demo_cpu"] = usage["cpu"]
    say(f"[demo] make demo     {out['make_demo_s']:7.2f} s (venv already there)")
    out["total_s"] = round(out["make_install_s"] + out["make_demo_s"], 2)
    say(f"[demo] fresh `make demo` total {out['total_s']:7.2f} s")
    drop_temp(args, tmp)
    return out


# ----------------------------------------------------------------------------- features


def _features_child(folder: str, breakdown: bool) -> dict:
    import numpy as np

    from leadml import dataset, features, train
    from leadml.config import TrainConfig

    out: dict = {}
    with timed(out, "load_s"):
        data = dataset.load_crm(Path(folder))
    out["load_peak_gib"] = gib(hwm_bytes())
    out["rss_after_load_gib"] = gib(rss_bytes())
    out["peak_reset"] = reset_peak()
    as_of = train.crm_cutoff(data, HORIZON_DAYS)
    config = TrainConfig()
    with timed(out, "fit_spec_s"):
        spec = features.fit_spec(data, config)
    with timed(out, "build_s"):
        feats = features.build_features(data.leads, data.events, spec, as_of=as_of)
    out["features_s"] = round(out["fit_spec_s"] + out["build_s"], 2)
    out["features_peak_gib"] = gib(hwm_bytes()) if out["peak_reset"] else None
    # clear_refs also resets ru_maxrss, so the process peak is the larger of the two windows
    out["process_peak_gib"] = max(out["load_peak_gib"] or 0, gib(peak_rss_bytes()) or 0)
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
            fit_cols = features._crm_fit_columns(data.leads)
        with timed(parts, "title_normalise_s"):
            features.normalise_seniority(data.leads["job_title"])
            features.normalise_department(data.leads["job_title"])
        with timed(parts, "category_codes_s"):
            for name, series in fit_cols.items():
                features._codes(series, spec.categories[name])
        with timed(parts, "engagement_s"):
            features._engagement(data.leads, data.events, cut, spec)
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

    from leadml import dataset

    parts: dict = {}
    reset_peak()
    with timed(parts, "read_events_parquet_s"):
        events = pd.read_parquet(dataset._table_file(folder, "events"))
    parts["peak_gib_after_read"] = gib(hwm_bytes())
    with timed(parts, "per_row_strip_lower_s"):
        etype = events["event_type"].astype("string").str.strip().str.lower()
        page = events["page"].astype("string").str.strip().str.lower().fillna("")
    with timed(parts, "per_row_to_object_arrays_s"):
        e_obj, p_obj = etype.to_numpy(), page.to_numpy()
    with timed(parts, "per_row_categoricals_s"):
        rows = pd.Categorical(e_obj, categories=dataset.EVENT_TYPES)
        pd.Categorical(p_obj, categories=("", *dataset.PAGE_KINDS))
    parts["per_row_total_s"] = round(sum(v for k, v in parts.items() if k.startswith("per_row")), 2)
    parts["peak_gib_after_per_row"] = gib(hwm_bytes())
    del etype, page, e_obj, p_obj
    with timed(parts, "on_categories_s"):  # the same event_type result from the categories
        cat = events["event_type"].astype("category")
        names = pd.Series(cat.cat.categories.astype(str)).str.strip().str.lower()
        mapping = np.append(pd.Index(dataset.EVENT_TYPES).get_indexer(names), -1)
        by_categories = pd.Categorical.from_codes(
            mapping[cat.cat.codes.to_numpy()], categories=dataset.EVENT_TYPES
        )
    parts["same_result"] = bool(np.array_equal(by_categories.codes, rows.codes))
    return parts


def bench_features(args, folder: Path, data_info: dict) -> dict:
    say(f"[features] load_crm + fit_spec + build_features on {folder.name} in a child process ...")
    out = run_child(_features_child, str(folder), args.breakdown)
    if _error("features", out):
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
    peak = (
        out["features_peak_gib"]
        if out["features_peak_gib"] is not None
        else out["process_peak_gib"]
    )
    say(
        f"[features] features total  {out['features_s']:7.2f} s   peak RSS {peak} GiB during features, {out['process_peak_gib']} GiB whole process"
    )
    for k, v in out.get("load_breakdown", {}).items():
        say(f"[features]   load_crm breakdown {k:<28} {v}")
    for k, v in out.get("breakdown", {}).items():
        say(f"[features]   breakdown {k:<20} {v:7.2f} s")
    full = out["leads"] >= 1_000_000
    out["aim_seconds_met"] = out["features_s"] <= AIMS["features_seconds"] if full else None
    out["aim_peak_met"] = out["process_peak_gib"] <= AIMS["features_peak_gib"] if full else None
    if full:
        say(
            f"[features] aim <= {AIMS['features_seconds']:.0f} s: {fmt(out['aim_seconds_met'])}; aim <= {AIMS['features_peak_gib']:.0f} GiB (whole process): {fmt(out['aim_peak_met'])}"
        )
    return out


# ----------------------------------------------------------------------------- train


def _train_child(folder: str, save_to: str | None) -> dict:
    from leadml.config import TrainConfig
    from leadml.train import fit

    out: dict = {}
    with timed(out, "fit_s"):
        result, _files = fit(Path(folder), TrainConfig(), progress=False)
    out["peak_rss_gib"] = gib(peak_rss_bytes())
    d = result.data_summary
    out |= {
        "rows": d["rows"], "leads": d["leads"], "events": d["events"], "cutoffs": d["cutoffs"], "slices": d["slices"],
        "features": d["features"], "best_iteration": d["best_iteration"], "calibration": d["calibration"],
        "split": d["split"], "metrics": result.metrics, "baseline": result.baseline, "bayes": result.bayes,
        "warnings": result.warnings,
    }  # fmt: skip
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
        "peak_rss_gib": gib(peak_rss_bytes()),
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


def bench_train(args, work: Path, folder: Path, model_dir: Path) -> dict:
    say(f"[train] leadml.train.fit on {folder.name} (no MLflow) in a child process ...")
    out = run_child(_train_child, str(folder), str(model_dir))
    if _error("train", out):
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
    out["aim_seconds_met"] = out["fit_s"] <= AIMS["train_seconds"] if full else None
    if full:
        say(f"[train] aim <= {AIMS['train_seconds']:.0f} s: {fmt(out['aim_seconds_met'])}")
    if args.train_profile == "always" or (
        args.train_profile == "auto" and full and not out["aim_seconds_met"]
    ):
        say("[train] profiling: the seconds fit records per step, in a child process ...")
        prof = run_child(_train_profile_child, str(folder))
        if not _error("train profile", prof):
            out["profile"] = prof
            for k, v in prof["steps_s"].items():
                say(f"[train]   {k:<15} {v:8.2f} s")
            say(
                f"[train]   {'total':<15} {prof['total_s']:8.2f} s; {prof['rounds']} rounds on {prof['train_rows']:,} rows, {prof['boosting_s_per_round']} s/round"
            )
    if args.mlflow_reps:
        small, _ = ensure_crm(work, args.demo_leads, args.seed, args.events_per_lead, args.regen)
        home = tempfile.mkdtemp(prefix="mlflow_", dir=work)
        say(
            f"[train] MLflow overhead on {small.name}: fit vs train (logging + registry), {args.mlflow_reps} rep(s), alternating ..."
        )
        ml = run_child(_mlflow_child, str(small), home, args.mlflow_reps)
        if not _error("train mlflow", ml):
            out["mlflow"] = ml
            say(f"[train]   fit   {ml['fit_s']} s")
            say(f"[train]   train {ml['train_s']} s (the first one also creates the sqlite store)")
            drop_temp(args, Path(home))
    return out


# ----------------------------------------------------------------------------- score


def _fit_small_model_child(folder: str, save_to: str) -> dict:
    from leadml.config import TrainConfig
    from leadml.train import fit

    result, _ = fit(Path(folder), TrainConfig(), progress=False)
    result.scorer.save(save_to)
    return {"model": save_to, "best_iteration": result.data_summary["best_iteration"]}


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
    out |= {
        "rows": int(n),
        "columns": int(X.shape[1]),
        "layout": "C" if X.flags.c_contiguous else "F" if X.flags.f_contiguous else "strided",
    }
    out["trees"] = trees(scorer.booster)
    booster = scorer.booster
    # warm up both paths once (page faults, thread pools), then alternate
    booster.predict(X[:1000], num_threads=0)
    scorer.score_features(X[:1000])
    bare, full, frame = [], [], []
    for r in range(reps):
        order = ("a", "b") if r % 2 == 0 else ("b", "a")
        for side in order:
            t0 = time.perf_counter()
            if side == "a":
                booster.predict(X, num_threads=0)
                bare.append(time.perf_counter() - t0)
            else:
                scorer.score_features(X)
                full.append(time.perf_counter() - t0)
    for _ in range(
        max(1, reps // 2)
    ):  # the DataFrame path LeadScorer.score_leads takes (information)
        t0 = time.perf_counter()
        scorer.score_features(feats.X)
        frame.append(time.perf_counter() - t0)
    out["bare_s"] = [round(x, 3) for x in bare]
    out["score_features_s"] = [round(x, 3) for x in full]
    out["score_features_frame_s"] = [round(x, 3) for x in frame]
    out["bare_rows_per_s"] = round(n / statistics.median(bare))
    out["score_features_rows_per_s"] = round(n / statistics.median(full))
    out["score_features_frame_rows_per_s"] = round(n / statistics.median(frame))
    out["ratio"] = round(statistics.median(bare) / statistics.median(full), 3)
    out["ratio_per_rep"] = [round(a / b, 3) for a, b in zip(bare, full, strict=True)]
    if not X.flags.c_contiguous:  # information: does the matrix layout matter to LightGBM?
        Xc = np.ascontiguousarray(X)
        t = []
        for _ in range(max(1, reps // 2)):
            t0 = time.perf_counter()
            booster.predict(Xc, num_threads=0)
            t.append(time.perf_counter() - t0)
        out["bare_c_order_rows_per_s"] = round(n / statistics.median(t))
    return out


def _score_file_child(folder: str, model: str, out_file: str, home: str) -> dict:
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
        "peak_rss_gib": gib(peak_rss_bytes()),
        "bands": s.bands,
    }


def bench_score(args, work: Path, folder: Path, model_dir: Path) -> dict:
    out: dict = {}
    if not (model_dir / "scorer.json").exists():
        small, _ = ensure_crm(work, args.demo_leads, args.seed, args.events_per_lead, args.regen)
        model_dir = work / f"model_{args.demo_leads}_s{args.seed}"
        say(f"[score] no model from the train section; fitting one on {small.name} -> {model_dir}")
        fitted = run_child(_fit_small_model_child, str(small), str(model_dir))
        if _error("score", fitted):
            return fitted
    out["model"] = str(model_dir)
    say(
        f"[score] bare Booster.predict vs LeadScorer.score_features on {folder.name}, {args.score_reps} alternating reps, in a child process ..."
    )
    res = run_child(_score_child, str(folder), str(model_dir), args.score_reps)
    if _error("score", res):
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
    out["aim_ratio_met"] = res["ratio"] >= AIMS["score_ratio"]
    say(
        f"[score] ratio (b)/(a) {res['ratio']:.3f} (per rep {res['ratio_per_rep']}); aim >= {AIMS['score_ratio']}: {fmt(out['aim_ratio_met'])}"
    )
    home = tempfile.mkdtemp(prefix="score_", dir=work)
    say(
        "[score] end-to-end leadml.score.score_file (read, features, score, write CSV) in a child process ..."
    )
    e2e = run_child(
        _score_file_child, str(folder), str(model_dir), str(Path(home) / "scores.csv"), home
    )
    if not _error("score_file", e2e):
        out["score_file"] = e2e
        say(
            f"[score] score_file {e2e['rows']:,} rows in {e2e['score_file_s']} s = {e2e['rows_per_s']:,} rows/s, peak {e2e['peak_rss_gib']} GiB"
        )
        drop_temp(args, Path(home))
    return out


# ----------------------------------------------------------------------------- contention


def _boost_child(folder: str, threads: int, passive: bool, rounds: int) -> dict:
    """`fit_booster` for a fixed number of rounds on the sample's training slice, timed."""
    if passive:  # before LightGBM's OpenMP runtime is loaded in this fresh process
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    else:
        os.environ.pop("OMP_WAIT_POLICY", None)
    from leadml import dataset as ds
    from leadml import features
    from leadml import train as tr
    from leadml.config import TrainConfig
    from leadml.model import fit_booster

    cfg = TrainConfig()
    data = tr.load_for_training(Path(folder), cfg)
    lab = tr.label(data, cfg)
    parts = tr.split(lab, cfg)
    spec_data = ds.LeadData(
        "crm",
        lab.leads.iloc[parts["train"]],
        None,
        "lead_id",
        "converted",
        None,
        data.rejects,
        data.source,
    )
    spec = features.fit_spec(spec_data, cfg)
    X = features.build_features(lab.leads, lab.events, spec, as_of=lab.as_of).X.to_numpy()
    model = cfg.model.model_copy(
        update={"threads": threads, "max_rounds": rounds, "early_stopping_rounds": rounds + 1}
    )
    tr_rows, va_rows = parts["train"], parts["valid"]
    usage: dict = {}
    with contention(usage):
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


def bench_contention(args, work: Path) -> dict:
    """LightGBM boosting on the demo sample, alone and next to a competing process, per thread setting."""
    folder, _ = ensure_crm(work, args.demo_leads, args.seed, args.events_per_lead, args.regen)
    rounds = args.contention_rounds
    variants = [
        ("threads=0 (default)", 0, False),
        ("threads=0, OMP_WAIT_POLICY=PASSIVE", 0, True),
        ("threads=1", 1, False),
    ]
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
            wait_for_quiet()
            hog = ctx.Process(target=competitor, args=(1800.0,), daemon=True)
            hog.start()
            time.sleep(3)  # let it get going (imports)
        try:
            for label, threads, passive in variants:
                for _attempt in range(3):  # "alone" means alone: retry when a neighbour showed up
                    res = run_child(
                        _boost_child, str(folder), threads, passive, rounds, quiet_first=hog is None
                    )
                    if hog is not None or "error" in res or res["boost_cpu"]["others_cores"] < 0.2:
                        break
                if _error("contention", res):
                    continue
                row = {"variant": label, "competitor": name, "boosting_s": res["boosting_s"],
                       "others_cores": res["boost_cpu"]["others_cores"], "train_rows": res["train_rows"]}  # fmt: skip
                out["runs"].append(row)
                say(
                    f"[contention] {name:<36} {label:<36} {row['boosting_s']:8.2f} s  (others {row['others_cores']:.2f} cores)"
                )
        finally:
            if hog is not None:
                hog.terminate()
                hog.join()
    return out


# ----------------------------------------------------------------------------- xeducation


def _xed_config(seed: int):
    from leadml.config import FlatConfig, SplitConfig, TrainConfig

    return TrainConfig(
        flat=FlatConfig(target=XED_TARGET, drop=list(XED_DROP)), split=SplitConfig(seed=seed)
    )


def _xed_reference_frame(path: Path):
    """The CSV as the issue's reference read it: pandas defaults, category dtype for text columns."""
    import pandas as pd

    frame = pd.read_csv(path)
    frame = frame.drop(
        columns=[c for c in frame.columns if c in XED_DROP or str(c).startswith("Unnamed:")]
    )
    y = frame.pop(XED_TARGET).to_numpy()
    for col in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[col]):
            frame[col] = frame[col].astype("category")
    return frame, y


def _plain_lgbm_auc(X, y, train_rows, test_rows, seed: int) -> tuple[float, float]:
    import lightgbm as lgb
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from leadml.evaluate import expected_calibration_error

    model = lgb.LGBMClassifier(n_estimators=300, verbose=-1, random_state=seed)
    model.fit(X.iloc[train_rows], y[train_rows])
    p = np.asarray(model.predict_proba(X.iloc[test_rows]))[:, 1]
    return float(roc_auc_score(y[test_rows], p)), expected_calibration_error(y[test_rows], p)


def _ece_floor(p, draws: int = 500, seed: int = 0) -> tuple[float, float]:
    """ECE of a perfectly calibrated model on a test slice of this size and these probabilities.

    Labels are drawn as Bernoulli(p), so every gap is sampling noise: returns the mean ECE over
    `draws` and the share of draws that reach the ECE aim. A measured ECE near the mean is as
    good as calibration can be shown to be on this slice.
    """
    import numpy as np

    from leadml.evaluate import expected_calibration_error

    rng = np.random.default_rng(seed)
    p = np.asarray(p, float)
    sims = np.array([expected_calibration_error(rng.random(p.size) < p, p) for _ in range(draws)])
    return float(sims.mean()), float((sims <= AIMS["xeducation_ece"]).mean())


def _summary(values: list[float]) -> dict:
    return {
        "mean": round(statistics.mean(values), 4),
        "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
        "min": round(min(values), 4),
        "max": round(max(values), 4),
        "n": len(values),
    }


def bench_xeducation(args) -> dict:
    import numpy as np
    from sklearn.model_selection import train_test_split

    from leadml import train as tr

    path = Path(args.xeducation)
    if not path.exists():
        say(f"[xeducation] {path} not found: skipped")
        return {"skipped": f"{path} not found"}
    out: dict = {"path": str(path), "drop": XED_DROP}
    say(
        f"[xeducation] leadml.train.fit, flat mode, target {XED_TARGET}, default config (split seed 7) ..."
    )
    t0 = time.perf_counter()
    result, files = tr.fit(path, _xed_config(7), progress=False)
    out["fit_s"] = round(time.perf_counter() - t0, 2)
    floor7, meet7 = _ece_floor(files["p_test"])
    m, b = result.metrics, result.baseline or {}
    d = result.data_summary
    out["seed7"] = {
        "roc_auc": round(m["roc_auc"], 4), "ece": round(m["ece"], 4), "log_loss": round(m["log_loss"], 4),
        "baseline_roc_auc": round(b.get("roc_auc", float("nan")), 4), "baseline_ece": round(b.get("ece", float("nan")), 4),
        "test_leads": m["leads"], "features": d["features"], "calibration": d["calibration"],
        "crossfit_folds": d["crossfit_folds"], "best_iteration": d["best_iteration"], "split": d["split"],
        "ece_floor": round(floor7, 4), "calibrated_meets_ece_aim": round(meet7, 3),
    }  # fmt: skip
    s7 = out["seed7"]
    say(
        f"[xeducation] seed 7: AUC {s7['roc_auc']:.4f}, ECE {s7['ece']:.4f}, baseline AUC {s7['baseline_roc_auc']:.4f} ({s7['test_leads']:,} test leads, {s7['features']} features, {s7['crossfit_folds']}-fold cross-fit, {s7['calibration']}), {out['fit_s']} s"
    )
    say(
        f"[xeducation]   a perfectly calibrated model on this test slice: ECE {floor7:.4f} on average, <= {AIMS['xeducation_ece']} in {meet7:.0%} of draws"
    )
    for w in result.warnings:
        say(f"[xeducation] warning: {w}")

    Xref, yref = _xed_reference_frame(path)
    per_seed = []
    for seed in range(1, args.xed_seeds + 1):
        cfg = _xed_config(seed)
        res, files = tr.fit(path, cfg, progress=False)
        floor, meet = _ece_floor(files["p_test"])
        # the same test rows for a plain LightGBM: train on every non-test row (paired comparison)
        data = tr.load_for_training(path, cfg)
        lab = tr.label(data, cfg)
        parts = tr.split(lab, cfg)
        test_rows = lab.leads.index.to_numpy()[parts["test"]]
        train_rows = np.setdiff1d(lab.leads.index.to_numpy(), test_rows)
        plain_auc, plain_ece = _plain_lgbm_auc(Xref, yref, train_rows, test_rows, seed)
        row = {"seed": seed, "roc_auc": round(res.metrics["roc_auc"], 4), "ece": round(res.metrics["ece"], 4),
               "baseline_roc_auc": round((res.baseline or {}).get("roc_auc", float("nan")), 4), "plain_lgbm_same_split_auc": round(plain_auc, 4),
               "plain_lgbm_same_split_ece": round(plain_ece, 4), "ece_floor": round(floor, 4), "calibrated_meets_ece_aim": round(meet, 3)}  # fmt: skip
        per_seed.append(row)
        say(
            f"[xeducation] seed {seed:2d}: AUC {row['roc_auc']:.4f}  ECE {row['ece']:.4f}  baseline {row['baseline_roc_auc']:.4f}  plain LightGBM same split {row['plain_lgbm_same_split_auc']:.4f}  ECE floor {row['ece_floor']:.4f}"
        )
    out["seeds"] = per_seed
    if per_seed:
        out["auc"] = _summary([r["roc_auc"] for r in per_seed])
        out["ece"] = _summary([r["ece"] for r in per_seed])
        out["baseline_auc"] = _summary([r["baseline_roc_auc"] for r in per_seed])
        out["ece_floor"] = _summary([r["ece_floor"] for r in per_seed])
        out["calibrated_meets_ece_aim"] = _summary(
            [r["calibrated_meets_ece_aim"] for r in per_seed]
        )
        out["plain_same_split_ece"] = _summary([r["plain_lgbm_same_split_ece"] for r in per_seed])
        out["plain_same_split_auc"] = _summary([r["plain_lgbm_same_split_auc"] for r in per_seed])
        out["paired_gain"] = _summary(
            [r["roc_auc"] - r["plain_lgbm_same_split_auc"] for r in per_seed]
        )
        say(
            f"[xeducation] seeds 1..{args.xed_seeds}: AUC {out['auc']['mean']:.4f} +- {out['auc']['std']:.4f}, ECE {out['ece']['mean']:.4f} +- {out['ece']['std']:.4f}"
        )
        say(
            f"[xeducation]   leadml - plain LightGBM on the same test rows: {out['paired_gain']['mean']:+.4f} +- {out['paired_gain']['std']:.4f}"
        )
        say(
            f"[xeducation]   ECE of a perfectly calibrated model on the same slices: {out['ece_floor']['mean']:.4f} (<= {AIMS['xeducation_ece']} in {out['calibrated_meets_ece_aim']['mean']:.0%} of draws)"
        )

    ref = []
    for seed in range(args.ref_seeds):
        tr_rows, te_rows = train_test_split(
            np.arange(len(yref)), test_size=0.25, stratify=yref, random_state=seed
        )
        ref.append(_plain_lgbm_auc(Xref, yref, tr_rows, te_rows, seed))
    out["reference_75_25"] = {
        "auc": _summary([a for a, _ in ref]),
        "ece": _summary([e for _, e in ref]),
        "per_seed_auc": [round(a, 4) for a, _ in ref],
    }
    r = out["reference_75_25"]["auc"]
    say(
        f"[xeducation] reference LGBMClassifier(300) on 75/25 stratified splits, seeds 0..{args.ref_seeds - 1}: AUC {r['mean']:.4f} +- {r['std']:.4f} (max {r['max']:.4f})"
    )
    if per_seed:
        out["aim_auc_met"] = out["auc"]["mean"] >= AIMS["xeducation_auc"]
        out["aim_ece_met"] = out["ece"]["mean"] <= AIMS["xeducation_ece"]
        say(
            f"[xeducation] aim AUC >= {AIMS['xeducation_auc']} (mean over seeds): {fmt(out['aim_auc_met'])}; aim ECE <= {AIMS['xeducation_ece']}: {fmt(out['aim_ece_met'])}"
        )
    return out


# ----------------------------------------------------------------------------- report


def _f4(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def _contended(entry: dict) -> str:
    cpu = entry.get("cpu") or {}
    return "-" if not cpu else f"{cpu['others_cores']:.2f}"


def render_markdown(results: dict) -> str:
    """Tables of the figures of one run (RESULTS.md is written from these plus notes)."""
    mi = results["machine"]
    lines = [
        f"run {results['started']}: `{results['command']}`",
        "",
        f"machine: {mi['cpu']}, {mi['cores']} cores, {mi['memory_gib']} GiB, Python {mi['python']}, "
        + ", ".join(f"{k} {v}" for k, v in mi["versions"].items())
        + f"; OMP_WAIT_POLICY={results.get('omp_wait_policy')}",
        "",
        f"library: commit {results['git_before']['head']} at the start"
        + (" (src/ had uncommitted changes)" if results["git_before"]["src_changes"] else "")
        + f", {results['git_after']['head']} at the end"
        + (" (src/ had uncommitted changes)" if results["git_after"]["src_changes"] else ""),
        "",
        "`others`: cores kept busy by other processes during the step (0 = quiet machine).",
        "",
    ]
    sec = results["sections"]

    def table(title: str, rows: list[tuple[str, object]]) -> None:
        lines.extend([f"### {title}", "", "| figure | value |", "| --- | --- |"])
        lines.extend(f"| {k} | {v if isinstance(v, str) else fmt(v)} |" for k, v in rows)
        lines.append("")

    ok = {k: v for k, v in sec.items() if "error" not in v and "skipped" not in v}
    if "demo" in ok:
        d = ok["demo"]
        rows: list[tuple[str, object]] = [("leads", d["leads"])]
        for step in ("synth", "train", "score"):
            others = d[f"{step}_cpu"]["others_cores"]
            rows.append((f"leadml {step} (s)", f"{d[f'{step}_s']:.2f} (others {others:.2f})"))
        rows.append(("total (s)", d["total_s"]))
        if "fresh" in d:
            fr = d["fresh"]
            rows += [
                ("fresh copy: make install (s)", f"{fr['make_install_s']:.2f} (others {fr['make_install_cpu']['others_cores']:.2f})"),
                ("fresh copy: make demo (s)", f"{fr['make_demo_s']:.2f} (others {fr['make_demo_cpu']['others_cores']:.2f})"),
                ("fresh copy: total (s)", fr["total_s"]),
            ]  # fmt: skip
        table("demo", rows)
    if "features" in ok:
        f = ok["features"]
        rows = [
            ("leads = feature rows", f["rows"]), ("events", f["events"]),
            ("events inside the 180-day window", f["events_in_window"]), ("load_crm (s)", f["load_s"]),
            ("fit_spec (s)", f["fit_spec_s"]), ("build_features (s)", f["build_s"]),
            ("features = fit_spec + build_features (s)", f["features_s"]),
            ("peak RSS during load_crm (GiB)", f["load_peak_gib"]),
            ("peak RSS during features (GiB)", f["features_peak_gib"]),
            ("peak RSS whole child (GiB)", f["process_peak_gib"]),
            *((f"breakdown: {k}", v) for k, v in f.get("breakdown", {}).items()),
            *((f"load_crm breakdown: {k}", v) for k, v in f.get("load_breakdown", {}).items()),
            ("others (cores)", _contended(f)),
            ("aim <= 90 s met", f["aim_seconds_met"]), ("aim <= 6 GiB met", f["aim_peak_met"]),
        ]  # fmt: skip
        table("features", rows)
    if "train" in ok:
        t = ok["train"]
        rows = [
            ("rows (lead x cut-off)", t["rows"]), *((f"slice {k}", v) for k, v in t["slices"].items()),
            ("fit (s)", t["fit_s"]), ("others (cores)", _contended(t)), ("peak RSS (GiB)", t["peak_rss_gib"]),
            ("best_iteration", t["best_iteration"]), ("test AUC", _f4(t["metrics"]["roc_auc"])),
            ("baseline AUC", _f4((t["baseline"] or {}).get("roc_auc"))), ("Bayes AUC", _f4((t["bayes"] or {}).get("roc_auc"))),
            ("test ECE", _f4(t["metrics"]["ece"])), ("aim <= 180 s met", t["aim_seconds_met"]),
        ]  # fmt: skip
        if "profile" in t:
            rows += [(f"profile: {k} (s)", v) for k, v in t["profile"]["steps_s"].items()]
            rows += [("profile: others (cores)", _contended(t["profile"]))]
        if "mlflow" in t:
            ml = t["mlflow"]
            rows += [
                ("20k sample: fit (s)", ", ".join(map(str, ml["fit_s"]))),
                ("20k sample: train with MLflow (s)", ", ".join(map(str, ml["train_s"]))),
                ("20k sample: others (cores)", _contended(ml)),
            ]
        table("train", rows)
    if "score" in ok:
        s = ok["score"]
        rows = [
            ("rows x columns", f"{s['rows']:,} x {s['columns']} ({s['layout']}-order float64)"), ("trees", s["trees"]),
            ("(a) Booster.predict rows/s", s["bare_rows_per_s"]), ("(b) score_features rows/s", s["score_features_rows_per_s"]),
            ("ratio (b)/(a), medians", f"{s['ratio']:.3f}"), ("ratio per repetition", ", ".join(map(str, s["ratio_per_rep"]))),
            ("score_features(DataFrame) rows/s", s["score_features_frame_rows_per_s"]),
            ("others (cores)", _contended(s)), ("aim >= 0.7 met", s["aim_ratio_met"]),
        ]  # fmt: skip
        if "bare_c_order_rows_per_s" in s:
            rows.append(("Booster.predict on a C-order copy rows/s", s["bare_c_order_rows_per_s"]))
        if "score_file" in s:
            e = s["score_file"]
            rows += [
                ("score_file end-to-end (s)", e["score_file_s"]),
                ("score_file rows/s", e["rows_per_s"]),
                ("score_file peak RSS (GiB)", e["peak_rss_gib"]),
                ("score_file others (cores)", _contended(e)),
            ]
        table("score", rows)
    if "xeducation" in ok:
        x = ok["xeducation"]
        s7 = x["seed7"]
        rows = [
            ("seed 7: test AUC", _f4(s7["roc_auc"])), ("seed 7: test ECE", _f4(s7["ece"])),
            ("seed 7: baseline AUC", _f4(s7["baseline_roc_auc"])), ("seed 7: fit (s)", x["fit_s"]),
            ("seed 7: ECE noise floor", _f4(s7["ece_floor"])),
        ]  # fmt: skip
        if "auc" in x:

            def ms(d: dict) -> str:
                return f"{d['mean']:.4f} +- {d['std']:.4f} (min {d['min']:.4f}, max {d['max']:.4f})"

            n = x["auc"]["n"]
            rows += [
                (f"seeds 1..{n}: AUC", ms(x["auc"])), (f"seeds 1..{n}: ECE", ms(x["ece"])),
                (f"seeds 1..{n}: baseline AUC", ms(x["baseline_auc"])),
                (f"seeds 1..{n}: plain LightGBM, same test rows, AUC", ms(x["plain_same_split_auc"])),
                (f"seeds 1..{n}: leadml - plain LightGBM (paired)", ms(x["paired_gain"])),
                (f"seeds 1..{n}: plain LightGBM, same test rows, ECE", ms(x["plain_same_split_ece"])),
                (f"seeds 1..{n}: ECE of a perfectly calibrated model (noise floor)", ms(x["ece_floor"])),
                (f"seeds 1..{n}: share of such draws with ECE <= 0.02", ms(x["calibrated_meets_ece_aim"])),
                ("aim AUC >= 0.91 met (mean)", x["aim_auc_met"]), ("aim ECE <= 0.02 met (mean)", x["aim_ece_met"]),
            ]  # fmt: skip
        ref = x["reference_75_25"]
        rows += [
            (f"reference 75/25, seeds 0..{ref['auc']['n'] - 1}: AUC", f"{ref['auc']['mean']:.4f} +- {ref['auc']['std']:.4f} (max {ref['auc']['max']:.4f})"),
            ("others (cores)", _contended(x)),
        ]  # fmt: skip
        table("xeducation", rows)
    if "contention" in ok:
        c = ok["contention"]
        comps = c["competitors"]
        lines += [f"### contention ({c['rounds']} boosting rounds on {c['data']}, seconds)", "",
                  "| variant | " + " | ".join(comps) + " |", "| --- |" + " --- |" * len(comps)]  # fmt: skip
        by = {(r["variant"], r["competitor"]): r for r in c["runs"]}
        for variant in dict.fromkeys(r["variant"] for r in c["runs"]):
            cells = [
                f"{by[(variant, k)]['boosting_s']:.2f} (others {by[(variant, k)]['others_cores']:.2f})"
                if (variant, k) in by
                else "-"
                for k in comps
            ]
            lines.append(f"| {variant} | " + " | ".join(cells) + " |")
        lines.append("")
    for name, v in sec.items():
        if "error" in v:
            lines += [f"### {name}: FAILED", "", "```", v["error"].strip()[-3000:], "```", ""]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="leadml benchmarks: demo wall time, features, training, scoring throughput, X Education quality.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run, from {', '.join(SECTIONS + EXTRA_SECTIONS)} (contention only when named)",
    )
    p.add_argument(
        "--leads",
        type=int,
        default=1_000_000,
        help="leads for the features, train and score sections",
    )
    p.add_argument(
        "--events-per-lead",
        type=float,
        default=20.0,
        help="synthetic events per lead (make_crm's events_per_lead)",
    )
    p.add_argument("--seed", type=int, default=42, help="seed of the synthetic data")
    p.add_argument(
        "--demo-leads",
        type=int,
        default=20_000,
        help="leads for the demo section and the small MLflow comparison",
    )
    p.add_argument(
        "--fresh-venv",
        action="store_true",
        help="demo: also time `make install` + `make demo` in a copy of the tree (fresh venv, pip)",
    )
    p.add_argument(
        "--breakdown",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="features: also time build_features' parts one by one",
    )
    p.add_argument(
        "--train-profile",
        choices=["auto", "always", "never"],
        default="auto",
        help="train: time fit's steps one by one (auto: when 1M training misses its aim)",
    )
    p.add_argument(
        "--mlflow-reps",
        type=int,
        default=2,
        help="train: fit vs train-with-MLflow repetitions on the demo-size sample (0: skip)",
    )
    p.add_argument(
        "--score-reps", type=int, default=6, help="score: alternating repetitions of each side"
    )
    p.add_argument(
        "--contention-rounds",
        type=int,
        default=100,
        help="contention: boosting rounds per run (the default setting next to a busy process takes ~0.6 s a round)",
    )
    p.add_argument(
        "--xeducation",
        type=Path,
        default=XEDUCATION,
        help="X Education CSV (the section is skipped when it is missing)",
    )
    p.add_argument("--xed-seeds", type=int, default=10, help="xeducation: split seeds 1..N")
    p.add_argument(
        "--ref-seeds",
        type=int,
        default=10,
        help="xeducation: plain LightGBM reference seeds 0..N-1",
    )
    p.add_argument(
        "--work", type=Path, default=DEFAULT_WORK, help="scratch folder (data, models, logs)"
    )
    p.add_argument(
        "--regen",
        action="store_true",
        help="generate the synthetic data again even when it is cached in --work",
    )
    p.add_argument(
        "--keep-temp",
        action="store_true",
        help="keep the temp dirs of successful steps (demo homes with logs, MLflow stores, score files)",
    )
    p.add_argument(
        "--json",
        type=Path,
        default=None,
        help="write the figures as JSON here, and as Markdown next to it (default: <work>/results.json)",
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        help="before each timed step, wait up to this many seconds for other processes to leave the CPU idle",
    )
    p.add_argument(
        "--omp-passive",
        action="store_true",
        help="set OMP_WAIT_POLICY=PASSIVE for everything this run starts (LightGBM under CPU contention)",
    )
    args = p.parse_args(argv)
    args.sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(args.sections) - set(SECTIONS + EXTRA_SECTIONS))
    if unknown:
        p.error(
            f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS + EXTRA_SECTIONS)}"
        )
    if args.leads < 100 or args.demo_leads < 100:
        p.error("--leads and --demo-leads must be at least 100")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.omp_passive:  # before anything loads LightGBM's OpenMP runtime; children inherit it
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    _SETTINGS["quiet_wait"] = args.quiet_wait
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join(["benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine_info(),
        "load_before": os.getloadavg(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "git_before": git_state(),
        "sections": {},
    }
    mi = results["machine"]
    say(
        f"leadml benchmarks {results['started']} on {mi['cpu']}, {mi['cores']} cores, {mi['memory_gib']} GiB; load {results['load_before']}"
    )
    say(f"sections: {', '.join(args.sections)}; {args.leads:,} leads; work {work}")
    t_all = time.perf_counter()
    sec = results["sections"]
    model_dir = work / f"model_{args.leads}_s{args.seed}_e{args.events_per_lead:g}"
    if "demo" in args.sections:
        try:
            sec["demo"] = bench_demo(args, work)
        except RuntimeError as exc:
            sec["demo"] = {"error": str(exc)}
            _error("demo", sec["demo"])
    if any(s in args.sections for s in ("features", "train", "score")):
        folder, data_info = ensure_crm(
            work, args.leads, args.seed, args.events_per_lead, args.regen
        )
        if "features" in args.sections:
            sec["features"] = bench_features(args, folder, data_info)
        if "train" in args.sections:
            sec["train"] = bench_train(args, work, folder, model_dir)
        if "score" in args.sections:
            sec["score"] = bench_score(args, work, folder, model_dir)
    if "contention" in args.sections:
        sec["contention"] = bench_contention(args, work)
    if "xeducation" in args.sections:
        try:
            usage: dict = {}
            wait_for_quiet()
            with contention(usage):
                sec["xeducation"] = bench_xeducation(args)
            sec["xeducation"]["cpu"] = usage["cpu"]
            if usage["cpu"]["others_cores"] >= 0.2:
                say(
                    f"    (other processes kept {usage['cpu']['others_cores']} cores busy meanwhile)"
                )
        except Exception:  # noqa: BLE001 - report and finish the run
            sec["xeducation"] = {"error": traceback.format_exc()}
            _error("xeducation", sec["xeducation"])
    results["load_after"] = os.getloadavg()
    results["git_after"] = git_state()
    if results["git_after"] != results["git_before"]:
        say(
            f"NOTE: the library changed during the run: {results['git_before']} -> {results['git_after']}"
        )
    results["total_s"] = round(time.perf_counter() - t_all, 1)
    out = args.json or work / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    md = out.with_suffix(".md")
    md.write_text(render_markdown(results) + "\n")
    say(
        f"\ndone in {results['total_s']} s (load {results['load_after']}); figures in {out} and {md}"
    )
    failed = [k for k, v in sec.items() if "error" in v]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
