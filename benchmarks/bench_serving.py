"""The scoring service (`leadml serve`) against `mlflow models serve` of the same model.

    .venv/bin/python benchmarks/bench_serving.py           # 10 s per measurement, ~3 min with start-up
    .venv/bin/python benchmarks/bench_serving.py --quick   # 3 s per measurement, 3,000 leads
    .venv/bin/python benchmarks/bench_serving.py --help    # every option

Both servers run on loopback at the same time, with 2 workers each and
OMP_WAIT_POLICY=PASSIVE, serving the champion of the registry in <work>/serve/ (its own
LEADML_HOME with an embedded sqlite MLflow store; trained on `leadml synth --leads
<demo-leads> --seed <seed>` the first time, or again with --retrain). Payloads are real leads of that data with
their events: one lead, 100 and 1,000 distinct leads, in each server's format (leadml: the
lead object or {"leads": [...]} with `events` as a JSON list; MLflow: {"dataframe_records":
[...]} with `events` as a JSON string, as the registered signature says). Before measuring,
every payload must get HTTP 200 from its server and both servers must give the same
probabilities for the 100-lead batch.

Load comes from wrk through serve/loadtest.py; each scenario is measured on one server after
the other, with the same duration, after a short unrecorded warm-up. The machine is shared:
each measurement records how many cores the servers, the client (wrk) and other processes
used meanwhile (`others`; near or above 0.2 means a neighbour competed for the CPU).
Figures go to <work>/serving.json; benchmarks/RESULTS.md is updated by hand. In-process scoring
throughput (no HTTP) is bench_scoring.py.

`--parts grades` (in the default `mlflow,grades`) adds issue 15's paired comparison: the same
champion exported twice, with its grades and with them removed (`grades = None`, as a model
trained before grades), served side by side by two more `leadml serve`; single-lead /predict
is measured on both in turns (the order swapped each round, `--grades-rounds`): without
reasons, with the default reasons (both held to the budget: p99 at most +25%, throughput at
most -20%), and with grade_reasons=true (an option); the report gives p99, throughput and
the servers' CPU per request of both and their ratios.

`--parts store` adds issue 16's paired comparison: the champion served twice, one server
keeping every score in a SQLite score store of its own (write-behind, as deployed) and one
with LEADML_STORE_URL=off; single-lead /predict with the default reasons is measured on both
in turns (`--store-rounds`, the order swapped each round). The goal: throughput with the store
at least 85% of without. After the load, the store must hold one row per answered request
(nothing dropped, nothing left queued).

Over ~400 lines on purpose: the payloads, the two servers, the checks that they agree and the
report are one comparison; apart they would be read together anyway.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import fixtures
import measure
import runner
from fixtures import BIN, ROOT
from measure import say

NAME = "serving"
DEFAULT = False  # needs wrk (apt-get install wrk); `make bench-serve`
QUICK = {"duration": 3}
SAMPLE_SEED = 7  # which leads go into the payloads
OBSERVATION_DAYS = 180  # payload leads have activity this recently (the model's look-back)
MODEL_URI = "models:/leadml@champion"
VERSIONS = ("mlflow", "fastapi", "uvicorn", "lightgbm", "numpy", "pandas", "leadml")

# payload -> leads per request
PAYLOADS = {"single": 1, "batch100": 100, "batch1000": 1000}
# variant -> (server, label)
VARIANTS = {
    "leadml_fast": ("leadml", "leadml reasons=false"),
    "leadml_reasons": ("leadml", "leadml with reasons"),
    "mlflow": ("mlflow", "mlflow models serve"),
}
# (key, title, payload, connections, variants measured one after the other)
SCENARIOS = [
    ("single_c8", "single lead", "single", 8, ("leadml_fast", "leadml_reasons", "mlflow")),
    ("single_c32", "single lead", "single", 32, ("leadml_fast", "leadml_reasons", "mlflow")),
    ("batch100_c8", "100-lead batch", "batch100", 8, ("leadml_fast", "mlflow")),
    (
        "batch1000_c4",
        "1,000-lead batch",
        "batch1000",
        4,
        ("leadml_fast", "leadml_reasons", "mlflow"),
    ),
]

# issue 15: the same model with and without grades (variant -> label), single lead, in turns
GRADE_VARIANTS = {"with": "with grades", "without": "grades removed"}
GRADE_SCENARIOS = [  # (key, title, query, connections, held to the budget)
    ("single_c8_fast", "single lead, reasons=false", "?reasons=false", 8, True),
    ("single_c8_reasons", "single lead, default (reasons)", "", 8, True),
    ("single_c8_grade_reasons", "single lead, grade_reasons=true", "?grade_reasons=true", 8, False),
]
BUDGET = {"p99_growth": 0.25, "throughput_fall": 0.20}
# issue 16: the same champion with the score store on and off, single lead, in turns
STORE_VARIANTS = {"on": "store on", "off": "store off"}
STORE_SCENARIOS = [("single_c8_reasons", "single lead, default (reasons)", "", 8, True)]
STORE_THROUGHPUT_FALL = 0.15


def load_loadtest():
    """serve/loadtest.py (serve/ is not a package)."""
    path = ROOT / "serve" / "loadtest.py"
    spec = importlib.util.spec_from_file_location("leadml_serve_loadtest", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- model, data


def serve_home(args: argparse.Namespace) -> Path:
    """The LEADML_HOME of the servers: <work>/serve at the default size, one per size otherwise."""
    if (args.demo_leads, args.seed) == (20_000, 42):
        return args.work / "serve"
    return args.work / f"serve_{args.demo_leads}_s{args.seed}"


def base_env(work: Path) -> dict:
    return fixtures.scratch_env(
        work,
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        MLFLOW_LOGGING_LEVEL="ERROR",
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        OMP_WAIT_POLICY="PASSIVE",
    )


def champion_version(work: Path, env: dict) -> str | None:
    if not (work / "mlruns" / "mlflow.db").exists():
        return None
    code = (
        "from leadml import tracking; from leadml.config import Settings; "
        "print('CHAMPION', tracking.alias_version(Settings.from_env(), 'champion') or '')"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=work, capture_output=True, text=True, check=False
    )
    found = [ln.split()[1:] for ln in res.stdout.splitlines() if ln.startswith("CHAMPION")]
    if res.returncode != 0 or not found:
        raise RuntimeError(f"cannot read the registry in {work}:\n{res.stderr[-2000:]}")
    return found[-1][0] if found[-1] else None


def ensure_champion(work: Path, env: dict, retrain: bool, leads: int, seed: int) -> str:
    """The champion's version in the work store; synthesise and train first when needed."""
    if retrain:  # a clean store, so the new model is the champion
        for name in ("data", "mlruns", "models"):
            shutil.rmtree(work / name, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    leadml = str(BIN / "leadml")
    data = work / "data"
    if not any(data.glob("leads.*")):
        say(f"synthesising {leads:,} leads (seed {seed}) into {data}")
        synth = ["synth", "--out", str(data), "--leads", str(leads), "--seed", str(seed)]
        subprocess.run([leadml, "-q", *synth], env=env, cwd=work, check=True)
    version = champion_version(work, env)
    if version is None or retrain:
        say(f"training on {data} (LEADML_HOME={work})")
        train = [leadml, "-q", "train", "--data", str(data)]
        subprocess.run(train, env=env, cwd=work, check=True)
        version = champion_version(work, env)
        if version is None:
            raise RuntimeError(f"training registered no champion in {work}; see the output above")
    return version


def build_payloads(work: Path, out: Path) -> dict:
    """Payload files for both servers from the synthetic data; returns their paths and sizes."""
    import numpy as np
    import pandas as pd

    from leadml.contract import PROFILE_COLUMNS
    from leadml.dataset import load_crm
    from leadml.records import from_tables

    data = load_crm(work / "data")
    leads, events = data.leads, data.events
    assert events is not None
    # the data's "now", as `leadml score` takes it: the latest activity, plus a second
    as_of = max(leads["created_at"].max(), events["occurred_at"].max()) + pd.Timedelta(seconds=1)
    recent = events.loc[
        events["occurred_at"] >= as_of - pd.Timedelta(days=OBSERVATION_DAYS), "lead_id"
    ].unique()
    pool = leads[leads["lead_id"].isin(recent)]
    n = max(PAYLOADS.values())
    if len(pool) < n:
        raise RuntimeError(f"only {len(pool)} leads with recent events; {n} needed")
    rng = np.random.default_rng(SAMPLE_SEED)
    picked = pool.iloc[rng.choice(len(pool), n, replace=False)]
    frame = picked[["lead_id", "created_at", *PROFILE_COLUMNS]].copy()
    frame["lead_id"] = frame["lead_id"].astype(str)
    ev = events[events["lead_id"].isin(picked["lead_id"])].copy()
    ev["lead_id"] = ev["lead_id"].astype(str)
    rows = from_tables(frame, ev, as_of)  # events: a JSON string per lead
    rows = rows.astype(object).where(rows.notna(), None)
    records = rows.to_dict("records")
    if any(r["events"] == "[]" for r in records):
        raise RuntimeError("a payload lead has no events")
    leads_json = [{**r, "events": json.loads(r["events"])} for r in records]
    out.mkdir(parents=True, exist_ok=True)
    info: dict = {"as_of": str(as_of), "sample_seed": SAMPLE_SEED, "files": {}}
    for name, k in PAYLOADS.items():
        bodies = {
            "leadml": leads_json[0] if k == 1 else {"leads": leads_json[:k]},
            "mlflow": {"dataframe_records": records[:k]},
        }
        for server, body in bodies.items():
            path = out / f"{server}_{name}.json"
            path.write_text(json.dumps(body, separators=(",", ":")))
            info["files"][f"{server}_{name}"] = {
                "path": str(path),
                "leads": k,
                "kib": round(path.stat().st_size / 1024, 1),
            }
    n_events = [len(lead["events"]) for lead in leads_json]
    info["events_per_lead"] = {
        "mean": round(float(np.mean(n_events)), 1),
        "single": n_events[0],
        "max": int(max(n_events)),
    }
    return info


def url_for(variant: str, ports: dict) -> str:
    server = VARIANTS[variant][0]
    if server == "mlflow":
        return f"http://127.0.0.1:{ports['mlflow']}/invocations"
    query = "?reasons=false" if variant == "leadml_fast" else ""
    return f"http://127.0.0.1:{ports['leadml']}/predict{query}"


def check_payloads(payloads: dict, ports: dict) -> dict:
    """Every (variant, payload) measured answers 200 with all its leads; compare the servers."""
    answers: dict = {}
    for _, _, payload, _, variants in SCENARIOS:
        for variant in variants:
            server = VARIANTS[variant][0]
            f = payloads["files"][f"{server}_{payload}"]
            url = url_for(variant, ports)
            status, body = fixtures.http(url, Path(f["path"]).read_bytes())
            if status != 200:
                raise RuntimeError(
                    f"{VARIANTS[variant][1]} answered {status} to {f['path']}: {body[:1000]!r}"
                )
            out = json.loads(body)
            preds = out["predictions"]
            if len(preds) != f["leads"] or out.get("rejected"):
                raise RuntimeError(
                    f"{VARIANTS[variant][1]}: {len(preds)} predictions for {f['leads']} leads "
                    f"({out.get('rejected')})"
                )
            answers[(variant, payload)] = preds
    ours = {p["lead_id"]: p for p in answers[("leadml_fast", "batch100")]}
    theirs = {str(p["lead_id"]): p for p in answers[("mlflow", "batch100")]}
    if set(ours) != set(theirs):
        raise RuntimeError("the servers returned different lead ids for the 100-lead batch")
    diffs = [abs(ours[k]["probability"] - theirs[k]["probability"]) for k in ours]
    return {
        "leads": len(ours),
        "max_abs_probability_diff": max(diffs),
        "band_mismatches": sum(ours[k]["band"] != theirs[k]["band"] for k in ours),
        "score_mismatches": sum(int(ours[k]["score"]) != int(theirs[k]["score"]) for k in ours),
        "note": "leadml rounds probabilities to 6 decimals; MLflow returns them unrounded",
    }


# ----------------------------------------------------------------------------- report


def ratios(runs: list[dict]) -> list[dict]:
    out = []
    for key, title, _, conns, _ in SCENARIOS:
        by = {r["variant"]: r for r in runs if r["scenario"] == key}
        base = by.get("mlflow")
        for variant in ("leadml_fast", "leadml_reasons"):
            if variant in by and base and base["requests_per_s"] > 0:
                out.append(
                    {
                        "scenario": key,
                        "title": f"{title}, {conns} connections",
                        "leadml": VARIANTS[variant][1],
                        "ratio": round(by[variant]["requests_per_s"] / base["requests_per_s"], 2),
                    }
                )
    return out


def table(results: dict) -> str:
    parts = [mlflow_table(results)] if "runs" in results else []
    if "grades" in results and results["grades"].get("runs"):
        parts.append(grades_table(results["grades"]))
    if "store" in results and results["store"].get("runs"):
        parts.append(store_table(results["store"]))
    return "\n\n".join(parts)


def mlflow_table(results: dict) -> str:
    head = (
        f"{'scenario':<18} {'server':<21} {'conns':>5} {'req/s':>9} {'leads/s':>10} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>7} {'errors':>6} {'others':>6}"
    )
    lines = [head, "-" * len(head)]
    titles = {key: title for key, title, *_ in SCENARIOS}
    last = None
    for r in results["runs"]:
        if last is not None and r["scenario"] != last:
            lines.append("")
        last = r["scenario"]
        lines.append(
            f"{titles[r['scenario']]:<18} {r['label']:<21} {r['connections']:>5} "
            f"{r['requests_per_s']:>9,.1f} {r['leads_per_s']:>10,.0f} {r['p50_ms']:>8.2f} "
            f"{r['p99_ms']:>8.2f} {r['non_2xx']:>7,} {r['errors']:>6,} "
            f"{r['cpu']['others_cores']:>6.2f}"
        )
    lines += ["", "requests/s, leadml / mlflow:"]
    for q in results["ratios"]:
        lines.append(f"  {q['title']:<36} {q['leadml']:<21} {q['ratio']:>6.2f}x")
    a = results["agreement"]
    lines += [
        "",
        f"same probabilities? 100-lead batch: max |leadml - mlflow| = "
        f"{a['max_abs_probability_diff']:.2e}, band mismatches {a['band_mismatches']}, "
        f"score mismatches {a['score_mismatches']}",
        "others = cores used by other processes meanwhile (>= 0.2: the figure was contended)",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- grades pair


def export_pair(work: Path, env: dict) -> dict[str, Path]:
    """The champion exported with its grades and without them (as before grades existed)."""
    out = {name: work / "grades_pair" / name for name in GRADE_VARIANTS}
    for path in out.values():
        shutil.rmtree(path, ignore_errors=True)
    code = (
        "import sys; from leadml import tracking; from leadml.config import Settings\n"
        "s = tracking.load_scorer(Settings.from_env(), sys.argv[1])\n"
        "if s.grades is None: sys.exit('the champion has no grades: run with --retrain')\n"
        "s.save(sys.argv[2]); s.grades = None\n"
        "s.card = {k: v for k, v in s.card.items() if k != 'grades'}; s.save(sys.argv[3])\n"
    )
    cmd = [sys.executable, "-c", code, MODEL_URI, str(out["with"]), str(out["without"])]
    res = subprocess.run(cmd, env=env, cwd=work, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"cannot export the grades pair:\n{res.stderr[-2000:]}")
    return out


def grade_servers(args: argparse.Namespace, work: Path, env: dict) -> list[fixtures.Server]:
    pair = export_pair(work, env)
    servers = []
    for name, port in zip(GRADE_VARIANTS, args.grades_ports, strict=True):
        extra = ("--workers", str(args.workers), "--model", str(pair[name]))
        server = fixtures.leadml_server(port, env, work / "logs" / f"leadml-{name}.log", *extra)
        server.name = f"leadml serve ({GRADE_VARIANTS[name]})"
        servers.append(server)
    return servers


def check_grade_pair(payloads: dict, ports: dict) -> dict:
    """Both answer the single lead with the same probability; only one with grades."""
    body = Path(payloads["files"]["leadml_single"]["path"]).read_bytes()
    preds = {}
    for name in GRADE_VARIANTS:
        status, out = fixtures.http(f"http://127.0.0.1:{ports[name]}/predict", body)
        if status != 200:
            raise RuntimeError(f"{GRADE_VARIANTS[name]} answered {status}: {out[:1000]!r}")
        preds[name] = json.loads(out)["predictions"][0]
    w, wo = preds["with"], preds["without"]
    if w["probability"] != wo["probability"] or w["grid"] is None or wo["grid"] is not None:
        raise RuntimeError(f"the pair does not differ by the grades only: {w} / {wo}")
    return {
        "probability": w["probability"],
        "grid": w["grid"],
        "temperature": w["temperature"],
        "stage": w["stage"],
        "pql": w["pql"],
    }


def measure_pair(
    args,
    loadtest,
    payloads: dict,
    pgids: set[int],
    pair: dict,
    scenarios: list,
    urls: dict,
    rounds: int,
) -> list[dict]:
    """`rounds` rounds of each scenario on both servers of a pair (`pair`: variant -> title,
    `urls`: variant -> base URL), in turns (the first variant first in odd rounds), each after
    a warm-up; each run's figures with the CPU the servers and their neighbours used."""
    body = payloads["files"]["leadml_single"]["path"]
    runs = []
    for turn in range(rounds):
        order = list(pair) if turn % 2 == 0 else list(reversed(pair))
        for key, title, query, conns, _ in scenarios:
            say(f"\nround {turn + 1}: {title}, {conns} connections, {args.duration} s each:")
            measure.wait_for_quiet()  # --quiet-wait: a pair is better measured on a calm machine
            for name in order:
                url = f"{urls[name]}/predict{query}"
                measure.settle(pgids)
                warm = 0
                if args.warmup:
                    w = loadtest.run(url, body, conns, args.warmup, args.threads, timeout=30)
                    warm = w["requests"] - w["non_2xx"]
                    measure.settle(pgids)
                with measure.CpuMeter(pgids) as meter:
                    r = loadtest.run(url, body, conns, args.duration, args.threads, timeout=30)
                r |= {"scenario": key, "variant": name, "round": turn + 1, "cpu": meter.cores}
                r["answered"] = warm + r["requests"] - r["non_2xx"]  # warm-up included
                runs.append(r)
                contended = "  (contended)" if meter.cores["others_cores"] >= 0.2 else ""
                say(
                    f"  {pair[name]:<15} {loadtest.summary_line(r)}; others "
                    f"{meter.cores['others_cores']}{contended}"
                )
    return runs


def pair_ratios(runs: list[dict], pair: dict, scenarios: list) -> list[dict]:
    """Per scenario: the median over the rounds of each variant's figures, and the median of
    each round's first/second variant ratio (the pair measured back to back, so a neighbour
    that loads the machine for a while weighs on both sides of a ratio, not on one)."""
    first, second = pair
    out = []
    for key, title, _, conns, budget in scenarios:
        by = {(r["round"], r["variant"]): r for r in runs if r["scenario"] == key}
        rounds = sorted({turn for turn, _ in by})
        if not rounds:
            return out
        each = {(t, v): _figures(r) for (t, v), r in by.items()}
        row: dict = {"scenario": key, "title": f"{title}, {conns} connections", "budget": budget}
        for name in pair:
            row[name] = {
                k: round(statistics.median(each[(t, name)][k] for t in rounds), 2)
                for k in each[(rounds[0], name)]
            }
        for ratio, k in (
            ("p99_ratio", "p99_ms"),
            ("throughput_ratio", "requests_per_s"),
            ("server_cpu_ratio", "server_cpu_ms"),
        ):
            per_round = [each[(t, first)][k] / each[(t, second)][k] for t in rounds]
            row[f"{ratio}_per_round"] = [round(x, 3) for x in per_round]
            row[ratio] = round(statistics.median(per_round), 3)
        out.append(row)
    return out


def _figures(r: dict) -> dict:
    return {
        "requests_per_s": r["requests_per_s"],
        "p50_ms": r["p50_ms"],
        "p99_ms": r["p99_ms"],
        # the servers' CPU per request: less sensitive to neighbours than latency
        "server_cpu_ms": 1000 * r["cpu"]["server_cores"] / max(r["requests_per_s"], 1e-9),
        "others_cores": r["cpu"]["others_cores"],
    }


def grade_ratios(runs: list[dict]) -> list[dict]:
    """`pair_ratios` of the grades pair, each held to `BUDGET`."""
    out = pair_ratios(runs, GRADE_VARIANTS, GRADE_SCENARIOS)
    for row in out:
        row["within_budget"] = (
            row["p99_ratio"] <= 1 + BUDGET["p99_growth"]
            and row["throughput_ratio"] >= 1 - BUDGET["throughput_fall"]
        )
    return out


def grades_table(g: dict) -> str:
    head = (
        f"{'scenario':<45} {'model':<15} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'cpu ms/req':>10} {'others':>6}"
    )
    lines = [
        f"same model with and without grades, median of {g['rounds']} rounds in turns "
        f"({g['duration_s']} s each); ratios: median of each round's with/without",
        head,
        "-" * len(head),
    ]
    for q in g["ratios"]:
        for name in GRADE_VARIANTS:
            m = q[name]
            lines.append(
                f"{q['title']:<45} {GRADE_VARIANTS[name]:<15} {m['requests_per_s']:>8,.1f} "
                f"{m['p50_ms']:>8.2f} {m['p99_ms']:>8.2f} {m['server_cpu_ms']:>10.2f} "
                f"{m['others_cores']:>6.2f}"
            )
        verdict = "within" if q["within_budget"] else "OVER"
        held = (
            f"{verdict} budget: p99 <= x1.25, throughput >= x0.80"
            if q["budget"]
            else "an option, not held to the budget"
        )
        lines.append(
            f"{'':<45} with/without: p99 x{q['p99_ratio']:.2f}, throughput "
            f"x{q['throughput_ratio']:.2f}, server CPU per request x{q['server_cpu_ratio']:.2f} "
            f"({held})"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- store pair


def store_servers(args: argparse.Namespace, work: Path, env: dict) -> list[fixtures.Server]:
    """The champion served with a fresh SQLite score store, and with the store off."""
    folder = work / "store_pair"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    urls = {"on": f"sqlite:///{folder / 'store.db'}", "off": "off"}
    servers = []
    for name, port in zip(STORE_VARIANTS, args.store_ports, strict=True):
        server = fixtures.leadml_server(
            port,
            {**env, "LEADML_STORE_URL": urls[name]},
            work / "logs" / f"leadml-store-{name}.log",
            "--workers",
            str(args.workers),
        )
        server.name = f"leadml serve ({STORE_VARIANTS[name]})"
        servers.append(server)
    return servers


def store_ratios(runs: list[dict]) -> list[dict]:
    """`pair_ratios` of the store pair, each held to the issue's goal (throughput)."""
    out = pair_ratios(runs, STORE_VARIANTS, STORE_SCENARIOS)
    for row in out:
        row["within_goal"] = row["throughput_ratio"] >= 1 - STORE_THROUGHPUT_FALL
    return out


def store_rows(work: Path, env: dict) -> int:
    """Rows in the 'store on' server's store (read after the servers stopped and flushed)."""
    code = (
        "import sys; from leadml.store import ScoreStore, scores; import sqlalchemy as sa\n"
        "s = ScoreStore(sys.argv[1])\n"
        "with s.engine.connect() as c: print(c.execute(sa.select(sa.func.count()).select_from(scores)).scalar())\n"
    )
    url = f"sqlite:///{work / 'store_pair' / 'store.db'}"
    res = subprocess.run(
        [sys.executable, "-c", code, url], env=env, capture_output=True, text=True, check=True
    )
    return int(res.stdout.strip())


def store_table(g: dict) -> str:
    head = (
        f"{'scenario':<45} {'server':<10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'cpu ms/req':>10} {'others':>6}"
    )
    lines = [
        f"same champion with the score store on (SQLite, write-behind) and off, median of "
        f"{g['rounds']} rounds in turns ({g['duration_s']} s each); ratios: median of each "
        "round's on/off",
        head,
        "-" * len(head),
    ]
    for q in g.get("ratios", []):
        for name in STORE_VARIANTS:
            m = q[name]
            lines.append(
                f"{q['title']:<45} {STORE_VARIANTS[name]:<10} {m['requests_per_s']:>8,.1f} "
                f"{m['p50_ms']:>8.2f} {m['p99_ms']:>8.2f} {m['server_cpu_ms']:>10.2f} "
                f"{m['others_cores']:>6.2f}"
            )
        verdict = "within" if q["within_goal"] else "OUTSIDE"
        lines.append(
            f"{'':<45} on/off: throughput x{q['throughput_ratio']:.2f} "
            f"(per round {q['throughput_ratio_per_round']}), p99 x{q['p99_ratio']:.2f}, server "
            f"CPU per request x{q['server_cpu_ratio']:.2f} ({verdict} the goal: throughput "
            f">= x{1 - STORE_THROUGHPUT_FALL:.2f})"
        )
    if "rows" in g:
        lines.append(
            f"store after the run: {g['rows']:,} rows for {g['answered']:,} answered requests "
            "(warm-ups included; requests cut off by the end of a run may be answered and kept)"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main


def add_options(p: argparse._ArgumentGroup) -> None:
    p.add_argument("--duration", type=int, default=10, help="serving: seconds per measurement")
    p.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="serving: unrecorded seconds of load before each measurement (0: none)",
    )
    p.add_argument(
        "--retrain",
        action="store_true",
        help="serving: synthesise and train again in a clean store, even if a champion exists",
    )
    p.add_argument(
        "--workers", type=int, default=2, help="serving: worker processes of each server"
    )
    p.add_argument("--threads", type=int, default=2, help="serving: wrk threads")
    p.add_argument("--leadml-port", type=int, default=8101, help="serving: port of leadml serve")
    p.add_argument(
        "--mlflow-port", type=int, default=8102, help="serving: port of mlflow models serve"
    )
    p.add_argument(
        "--parts",
        default="mlflow,grades",
        help="serving: what to compare, comma-separated: mlflow (leadml against mlflow models "
        "serve), grades (the same model with and without grades, issue 15), store (the "
        "score store on and off, issue 16)",
    )
    p.add_argument(
        "--grades-rounds",
        type=int,
        default=2,
        help="serving: rounds of the grades pair (each measures both, the order swapped)",
    )
    p.add_argument(
        "--grades-ports",
        type=int,
        nargs=2,
        default=[8103, 8104],
        help="serving: ports of leadml serve with grades and without",
    )
    p.add_argument(
        "--store-rounds",
        type=int,
        default=2,
        help="serving: rounds of the store pair (each measures both, the order swapped)",
    )
    p.add_argument(
        "--store-ports",
        type=int,
        nargs=2,
        default=[8105, 8106],
        help="serving: ports of leadml serve with the score store on and off",
    )
    p.add_argument(
        "--ready-timeout",
        type=float,
        default=120.0,
        help="serving: seconds to wait for both servers to answer /ready and /ping",
    )


def check_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.duration < 1 or args.warmup < 0:
        parser.error("--duration must be at least 1 and --warmup at least 0 (whole seconds)")
    parts = set(args.parts.split(","))
    if not parts or parts - {"mlflow", "grades", "store"}:
        parser.error("--parts: some of mlflow, grades, store, comma-separated")
    if args.grades_rounds < 1 or args.store_rounds < 1:
        parser.error("--grades-rounds and --store-rounds must be at least 1")


def measure_scenarios(args, loadtest, payloads: dict, ports: dict, pgids: set[int]) -> list[dict]:
    runs = []
    for key, title, payload, conns, variants in SCENARIOS:
        say(f"\n{title}, {conns} connections, {args.duration} s each:")
        for variant in variants:
            server, label = VARIANTS[variant]
            body = payloads["files"][f"{server}_{payload}"]["path"]
            url = url_for(variant, ports)
            measure.settle(pgids)
            if args.warmup:
                loadtest.run(url, body, conns, args.warmup, args.threads, timeout=30)
                measure.settle(pgids)
            with measure.CpuMeter(pgids) as meter:
                r = loadtest.run(url, body, conns, args.duration, args.threads, timeout=30)
            r |= {
                "scenario": key,
                "variant": variant,
                "server": server,
                "label": label,
                "payload": payload,
                "leads_per_request": PAYLOADS[payload],
                "leads_per_s": round(r["requests_per_s"] * PAYLOADS[payload], 1),
                "cpu": meter.cores,
            }
            runs.append(r)
            contended = "  (contended)" if meter.cores["others_cores"] >= 0.2 else ""
            say(
                f"  {label:<21} {loadtest.summary_line(r)}; cores: servers "
                f"{meter.cores['server_cores']}, client {meter.cores['client_cores']}, "
                f"others {meter.cores['others_cores']}{contended}"
            )
    return runs


def _servers(args: argparse.Namespace, work: Path, env: dict) -> list[fixtures.Server]:
    log = work / "logs"
    mlflow_env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlruns' / 'mlflow.db'}"}
    mlflow_cmd = [
        str(BIN / "mlflow"),
        "models",
        "serve",
        "-m",
        MODEL_URI,
        "--env-manager",
        "local",
        "-p",
        str(args.mlflow_port),
        "-h",
        "127.0.0.1",
        "-w",
        str(args.workers),
    ]
    return [
        fixtures.leadml_server(
            args.leadml_port, env, log / "leadml-serve.log", "--workers", str(args.workers)
        ),
        fixtures.Server(
            "mlflow models serve",
            mlflow_cmd,
            mlflow_env,
            log / "mlflow-serve.log",
            f"http://127.0.0.1:{args.mlflow_port}/ping",
        ),
    ]


def run(args: argparse.Namespace) -> dict:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally below runs
    loadtest = load_loadtest()
    loadtest.wrk_path()  # fails early, with the apt-get hint, when wrk is missing
    work = serve_home(args)
    env = base_env(work)
    parts = set(args.parts.split(","))
    ports = {}
    if "mlflow" in parts:
        ports |= {"leadml": args.leadml_port, "mlflow": args.mlflow_port}
    if "grades" in parts:
        ports |= dict(zip(GRADE_VARIANTS, args.grades_ports, strict=True))
    if "store" in parts:
        ports |= {f"store_{n}": p for n, p in zip(STORE_VARIANTS, args.store_ports, strict=True)}
    for name, port in ports.items():
        if not fixtures.port_free(port):
            raise RuntimeError(f"port {port} ({name}) is in use; pass another port option")
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    results: dict = {
        "versions": {
            **runner.machine_info(VERSIONS)["versions"],
            "wrk": (wrk.stdout or wrk.stderr).split("[", 1)[0].replace("wrk", "").strip(),
        },
        "settings": {
            "parts": sorted(parts),
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "workers": args.workers,
            "wrk_threads": args.threads,
            "ports": ports,
            "omp_wait_policy": "PASSIVE",
            "work": str(work),
        },
    }
    say("versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()))
    version = ensure_champion(work, env, args.retrain, args.demo_leads, args.seed)
    results["model"] = {"uri": MODEL_URI, "version": version}
    payloads = build_payloads(work, work / "payloads")
    results["payloads"] = payloads
    say(
        f"model {MODEL_URI} = version {version}; payloads as of {payloads['as_of']}, "
        f"{payloads['events_per_lead']['mean']} events per lead (single lead: "
        f"{payloads['events_per_lead']['single']}); 1,000 leads: "
        f"{payloads['files']['leadml_batch1000']['kib']:,.0f} KiB (leadml), "
        f"{payloads['files']['mlflow_batch1000']['kib']:,.0f} KiB (mlflow)"
    )
    servers = _servers(args, work, env) if "mlflow" in parts else []
    try:
        if "grades" in parts:
            servers += grade_servers(args, work, env)
        if "store" in parts:
            servers += store_servers(args, work, env)
        for s in servers:
            s.start(work)
        deadline = time.perf_counter() + args.ready_timeout
        results["ready_s"] = {s.name: s.wait_ready(deadline) for s in servers}
        pgids = {s.proc.pid for s in servers if s.proc is not None}
        measure.settle(pgids, max_s=60)  # the other worker may still be loading its model
        say("ready in " + ", ".join(f"{k} {v} s" for k, v in results["ready_s"].items()))
        if "mlflow" in parts:
            compare_with_mlflow(args, loadtest, payloads, ports, pgids, version, results)
        if "grades" in parts:
            g: dict = {"rounds": args.grades_rounds, "duration_s": args.duration}
            results["grades"] = g
            g["answer"] = check_grade_pair(payloads, ports)
            say(
                f"both answer the single lead with p = {g['answer']['probability']}; with grades: "
                f"{g['answer']['grid']}, {g['answer']['temperature']}, {g['answer']['stage']}"
            )
            g["runs"] = measure_pair(
                args,
                loadtest,
                payloads,
                pgids,
                GRADE_VARIANTS,
                GRADE_SCENARIOS,
                {v: f"http://127.0.0.1:{ports[v]}" for v in GRADE_VARIANTS},
                args.grades_rounds,
            )
            g["ratios"] = grade_ratios(g["runs"])
            if any(loadtest.failed(r) for r in g["runs"]):
                say("\nWARNING: some requests failed (non-2xx or socket errors); see the runs")
                results["failed"] = True
        if "store" in parts:
            st: dict = {"rounds": args.store_rounds, "duration_s": args.duration}
            results["store"] = st
            st["runs"] = measure_pair(
                args,
                loadtest,
                payloads,
                pgids,
                STORE_VARIANTS,
                STORE_SCENARIOS,
                {v: f"http://127.0.0.1:{ports['store_' + v]}" for v in STORE_VARIANTS},
                args.store_rounds,
            )
            st["ratios"] = store_ratios(st["runs"])
            if any(loadtest.failed(r) for r in st["runs"]):
                say("\nWARNING: some requests failed (non-2xx or socket errors); see the runs")
                results["failed"] = True
    except Exception as exc:  # noqa: BLE001 - record it, stop the servers, exit non-zero
        results["error"] = f"{type(exc).__name__}: {exc}"
        say(f"\nerror: {results['error']}")
    finally:
        for s in servers:
            s.stop()
    if "store" in results and "runs" in results["store"]:
        _count_store_rows(work, env, results["store"])
    if "runs" in results or "grades" in results or "store" in results:
        say("\n" + table(results))
    return results


def _count_store_rows(work: Path, env: dict, st: dict) -> None:
    """The 'store on' server kept one row per request it answered (warm-ups included)."""
    st["answered"] = sum(r["answered"] for r in st["runs"] if r["variant"] == "on")
    st["rows"] = store_rows(work, env)
    say(f"store: {st['rows']:,} rows kept for {st['answered']:,} answered requests")


def compare_with_mlflow(
    args, loadtest, payloads: dict, ports: dict, pgids: set[int], version: str, results: dict
) -> None:
    status, ready = fixtures.http(f"http://127.0.0.1:{ports['leadml']}/ready")
    served = json.loads(ready).get("model_version") if status == 200 else None
    if str(served) != str(version):
        raise RuntimeError(f"leadml serves version {served}, the champion is {version}")
    results["agreement"] = check_payloads(payloads, ports)
    a = results["agreement"]
    say(
        f"every payload answered 200; 100-lead batch: max |p_leadml - p_mlflow| = "
        f"{a['max_abs_probability_diff']:.2e}, {a['band_mismatches']} band mismatches"
    )
    results["runs"] = measure_scenarios(args, loadtest, payloads, ports, pgids)
    results["ratios"] = ratios(results["runs"])
    if any(loadtest.failed(r) for r in results["runs"]):
        say("\nWARNING: some requests failed (non-2xx or socket errors); see the table")
        results["failed"] = True


def markdown(results: dict) -> list[str]:
    return ["### serving", "", "```", table(results), "```", ""]


if __name__ == "__main__":
    sys.exit(runner.main([sys.modules[__name__]]))
