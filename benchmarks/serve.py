"""The scoring service (`leadml serve`) against `mlflow models serve` of the same model.

    .venv/bin/python benchmarks/serve.py              # 10 s per measurement, ~3 min with start-up
    .venv/bin/python benchmarks/serve.py --quick      # 3 s per measurement: a smoke run
    .venv/bin/python benchmarks/serve.py --help       # every option

Both servers run on loopback at the same time, with 2 workers each and
OMP_WAIT_POLICY=PASSIVE, serving the champion of the registry in benchmarks/_work/serve/ (its
own LEADML_HOME with an embedded sqlite MLflow store; trained on `leadml synth --leads 20000
--seed 42` the first time, or again with --retrain). Payloads are real leads of that data with
their events: one lead, 100 and 1,000 distinct leads, in each server's format (leadml: the
lead object or {"leads": [...]} with `events` as a JSON list; MLflow: {"dataframe_records":
[...]} with `events` as a JSON string, as the registered signature says). Before measuring,
every payload must get HTTP 200 from its server and both servers must give the same
probabilities for the 100-lead batch.

Load comes from wrk through serve/loadtest.py; each scenario is measured on one server after
the other, with the same duration, after a short unrecorded warm-up. The machine is shared:
each measurement records how many cores the servers, the client (wrk) and other processes
used meanwhile (`others`; near or above 0.2 means a neighbour competed for the CPU).
Figures go to benchmarks/_work/serve/results.json; benchmarks/RESULTS.md is updated by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WORK = ROOT / "benchmarks" / "_work" / "serve"
BIN = Path(sys.executable).parent  # the venv's bin: leadml, mlflow, uvicorn
SYNTH_LEADS, SYNTH_SEED = 20_000, 42
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
    ("batch1000_c4", "1,000-lead batch", "batch1000", 4,
     ("leadml_fast", "leadml_reasons", "mlflow")),
]  # fmt: skip


def say(msg: str = "") -> None:
    print(msg, flush=True)


def load_loadtest():
    """serve/loadtest.py (serve/ is not a package)."""
    path = ROOT / "serve" / "loadtest.py"
    spec = importlib.util.spec_from_file_location("leadml_serve_loadtest", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- CPU use


def _machine_busy_s() -> float:
    vals = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(vals) - vals[3] - vals[4]) / os.sysconf("SC_CLK_TCK")  # all but idle, iowait


def _group_cpu_s(pgids: set[int]) -> float:
    """CPU seconds of every process in these process groups (with their reaped children)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended meanwhile
        if int(fields[2]) in pgids:  # pgrp; then utime, stime, cutime, cstime
            ticks += sum(int(v) for v in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk: a child that has been waited for
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class CpuMeter:
    """Cores used by the servers, by the client (this process and wrk) and by everybody else."""

    def __init__(self, pgids: set[int]):
        self.pgids = pgids

    def __enter__(self) -> CpuMeter:
        self.t0, self.busy0 = time.perf_counter(), _machine_busy_s()
        self.srv0, self.own0 = _group_cpu_s(self.pgids), _own_cpu_s()
        return self

    def __exit__(self, *exc) -> None:
        wall = max(time.perf_counter() - self.t0, 1e-9)
        srv = _group_cpu_s(self.pgids) - self.srv0
        own = _own_cpu_s() - self.own0
        busy = _machine_busy_s() - self.busy0
        self.cores = {
            "server_cores": round(srv / wall, 2),
            "client_cores": round(own / wall, 2),
            "others_cores": round(max(busy - srv - own, 0.0) / wall, 2),
        }


def settle(pgids: set[int], max_s: float = 15.0, idle_cores: float = 0.1) -> None:
    """Wait (at most max_s) until the servers are idle: loading, or requests still in flight."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < max_s:
        before = _group_cpu_s(pgids)
        time.sleep(0.5)
        if (_group_cpu_s(pgids) - before) / 0.5 < idle_cores:
            return


# ----------------------------------------------------------------------------- HTTP


def http(url: str, body: bytes | None = None, timeout: float = 120.0) -> tuple[int, bytes]:
    """(status, body) of a GET, or of a JSON POST when a body is given; 0 when unreachable."""
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Server:
    """One server in its own process group (all its workers are killed with it)."""

    def __init__(self, name: str, cmd: list[str], env: dict, log: Path, ready_url: str):
        self.name, self.cmd, self.env = name, cmd, env
        self.log_path, self.ready_url = log, ready_url
        self.proc: subprocess.Popen | None = None
        self.started = 0.0

    def start(self, cwd: Path) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.started = time.perf_counter()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=cwd, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip

    def log_tail(self, n: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def wait_ready(self, deadline: float) -> float:
        """Seconds from start until the readiness URL answered 200."""
        while time.perf_counter() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} before it was ready; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            if http(self.ready_url, timeout=2)[0] == 200:
                return round(time.perf_counter() - self.started, 1)
            time.sleep(0.5)
        raise RuntimeError(
            f"{self.name} not ready ({self.ready_url}) in time; log {self.log_path}:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the leader's pid is the group's id
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)  # uvicorn shuts its workers down
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=15)
        time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)  # whatever is left of the group
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self.proc = None


# ----------------------------------------------------------------------------- model, data


def base_env(work: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(
        LEADML_HOME=str(work),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        MLFLOW_LOGGING_LEVEL="ERROR",
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        OMP_WAIT_POLICY="PASSIVE",
    )
    return env


def champion_version(work: Path, env: dict) -> str | None:
    if not (work / "mlruns" / "mlflow.db").exists():
        return None
    code = (
        "from leadml import tracking; from leadml.config import Settings; "
        "print('CHAMPION', tracking.alias_version(Settings.from_env(), 'champion') or '')"
    )
    res = subprocess.run([sys.executable, "-c", code], env=env, cwd=work, capture_output=True,
                         text=True, check=False)  # fmt: skip
    found = [ln.split()[1:] for ln in res.stdout.splitlines() if ln.startswith("CHAMPION")]
    if res.returncode != 0 or not found:
        raise RuntimeError(f"cannot read the registry in {work}:\n{res.stderr[-2000:]}")
    return found[-1][0] if found[-1] else None


def ensure_model(work: Path, env: dict, retrain: bool) -> str:
    """The champion's version in the work store; synthesise and train first when needed."""
    if retrain:  # a clean store, so the new model is the champion
        for name in ("data", "mlruns", "models"):
            shutil.rmtree(work / name, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    leadml = str(BIN / "leadml")
    data = work / "data"
    if not any(data.glob("leads.*")):
        say(f"synthesising {SYNTH_LEADS:,} leads (seed {SYNTH_SEED}) into {data}")
        subprocess.run([leadml, "-q", "synth", "--out", str(data), "--leads", str(SYNTH_LEADS),
                        "--seed", str(SYNTH_SEED)], env=env, cwd=work, check=True)  # fmt: skip
    version = champion_version(work, env)
    if version is None or retrain:
        say(f"training on {data} (LEADML_HOME={work})")
        subprocess.run([leadml, "-q", "train", "--data", str(data)], env=env, cwd=work,
                       check=True)  # fmt: skip
        version = champion_version(work, env)
        if version is None:
            raise RuntimeError(f"training registered no champion in {work}; see the output above")
    return version


def build_payloads(work: Path, out: Path) -> dict:
    """Payload files for both servers from the synthetic data; returns their paths and sizes."""
    import numpy as np
    import pandas as pd

    from leadml.dataset import PROFILE_COLUMNS, events_to_records, load_crm

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
    rows = events_to_records(frame, ev, as_of)  # events: a JSON string per lead
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
                "path": str(path), "leads": k, "kib": round(path.stat().st_size / 1024, 1),
            }  # fmt: skip
    n_events = [len(lead["events"]) for lead in leads_json]
    info["events_per_lead"] = {"mean": round(float(np.mean(n_events)), 1),
                               "single": n_events[0], "max": int(max(n_events))}  # fmt: skip
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
            status, body = http(url, Path(f["path"]).read_bytes())
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


def machine() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict = {}
    for name in VERSIONS:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    versions["wrk"] = (wrk.stdout or wrk.stderr).split("[", 1)[0].replace("wrk", "").strip()
    versions["python"] = platform.python_version()
    return {"uname_m": platform.machine(), "cpu_count": os.cpu_count(), "cpu": cpu,
            "versions": versions}  # fmt: skip


def git_state() -> dict:
    """The commit measured and uncommitted changes under src/ (read-only, takes no git locks)."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}

    def git(*cmd: str) -> str:
        res = subprocess.run(["git", *cmd], cwd=ROOT, env=env, capture_output=True, text=True,
                             check=False)  # fmt: skip
        return res.stdout.strip()

    return {"head": git("rev-parse", "--short", "HEAD"),
            "src_changes": git("status", "--porcelain", "src")}  # fmt: skip


def ratios(runs: list[dict]) -> list[dict]:
    out = []
    for key, title, _, conns, _ in SCENARIOS:
        by = {r["variant"]: r for r in runs if r["scenario"] == key}
        base = by.get("mlflow")
        for variant in ("leadml_fast", "leadml_reasons"):
            if variant in by and base and base["requests_per_s"] > 0:
                out.append({
                    "scenario": key, "title": f"{title}, {conns} connections",
                    "leadml": VARIANTS[variant][1],
                    "ratio": round(by[variant]["requests_per_s"] / base["requests_per_s"], 2),
                })  # fmt: skip
    return out


def table(results: dict) -> str:
    head = (f"{'scenario':<18} {'server':<21} {'conns':>5} {'req/s':>9} {'leads/s':>10} "
            f"{'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>7} {'errors':>6} {'others':>6}")  # fmt: skip
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


# ----------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark `leadml serve` against `mlflow models serve` of the same "
        "registered model on loopback, with wrk (serve/loadtest.py).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    p.add_argument("--quick", action="store_true", help="smoke run: 3 s per measurement")
    p.add_argument("--warmup", type=int, default=1,
                   help="unrecorded seconds of load before each measurement (0: none)")  # fmt: skip
    p.add_argument("--retrain", action="store_true",
                   help="synthesise and train again in a clean store, even if a champion exists")  # fmt: skip
    p.add_argument("--work", type=Path, default=DEFAULT_WORK,
                   help="scratch folder and LEADML_HOME (data, MLflow store, payloads, logs)")  # fmt: skip
    p.add_argument("--workers", type=int, default=2, help="worker processes of each server")
    p.add_argument("--threads", type=int, default=2, help="wrk threads")
    p.add_argument("--leadml-port", type=int, default=8101, help="port of leadml serve")
    p.add_argument("--mlflow-port", type=int, default=8102, help="port of mlflow models serve")
    p.add_argument("--ready-timeout", type=float, default=120.0,
                   help="seconds to wait for both servers to answer /ready and /ping")  # fmt: skip
    p.add_argument("--json", type=Path, default=None,
                   help="write the figures here instead of <work>/results.json")  # fmt: skip
    args = p.parse_args(argv)
    if args.quick:
        args.duration = 3
    if args.duration < 1 or args.warmup < 0:
        p.error("--duration must be at least 1 and --warmup at least 0 (whole seconds)")
    return args


def measure(args, loadtest, payloads: dict, ports: dict, pgids: set[int]) -> list[dict]:
    runs = []
    for key, title, payload, conns, variants in SCENARIOS:
        say(f"\n{title}, {conns} connections, {args.duration} s each:")
        for variant in variants:
            server, label = VARIANTS[variant]
            body = payloads["files"][f"{server}_{payload}"]["path"]
            url = url_for(variant, ports)
            settle(pgids)
            if args.warmup:
                loadtest.run(url, body, conns, args.warmup, args.threads, timeout=30)
                settle(pgids)
            with CpuMeter(pgids) as meter:
                r = loadtest.run(url, body, conns, args.duration, args.threads, timeout=30)
            r |= {"scenario": key, "variant": variant, "server": server, "label": label,
                  "payload": payload, "leads_per_request": PAYLOADS[payload],
                  "leads_per_s": round(r["requests_per_s"] * PAYLOADS[payload], 1),
                  "cpu": meter.cores}  # fmt: skip
            runs.append(r)
            contended = "  (contended)" if meter.cores["others_cores"] >= 0.2 else ""
            say(f"  {label:<21} {loadtest.summary_line(r)}; cores: servers "
                f"{meter.cores['server_cores']}, client {meter.cores['client_cores']}, "
                f"others {meter.cores['others_cores']}{contended}")  # fmt: skip
    return runs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally below runs
    loadtest = load_loadtest()
    loadtest.wrk_path()  # fails early, with the apt-get hint, when wrk is missing
    work = args.work.resolve()
    env = base_env(work)
    ports = {"leadml": args.leadml_port, "mlflow": args.mlflow_port}
    for name, port in ports.items():
        if not port_free(port):
            say(f"error: port {port} ({name}) is in use; pass --{name}-port")
            return 2
    results: dict = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join(["benchmarks/serve.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine(),
        "git": git_state(),
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "workers": args.workers,
            "wrk_threads": args.threads,
            "ports": ports,
            "omp_wait_policy": "PASSIVE",
            "work": str(work),
        },
        "load_before": os.getloadavg(),
    }
    mi = results["machine"]
    say(f"serve benchmark {results['started']}: {mi['uname_m']}, {mi['cpu_count']} cores "
        f"({mi['cpu']}), load {results['load_before']}")  # fmt: skip
    say("versions: " + ", ".join(f"{k} {v}" for k, v in mi["versions"].items()))
    t_all = time.perf_counter()
    version = ensure_model(work, env, args.retrain)
    results["model"] = {"uri": MODEL_URI, "version": version}
    payloads = build_payloads(work, work / "payloads")
    results["payloads"] = payloads
    say(f"model {MODEL_URI} = version {version}; payloads as of {payloads['as_of']}, "
        f"{payloads['events_per_lead']['mean']} events per lead (single lead: "
        f"{payloads['events_per_lead']['single']}); 1,000 leads: "
        f"{payloads['files']['leadml_batch1000']['kib']:,.0f} KiB (leadml), "
        f"{payloads['files']['mlflow_batch1000']['kib']:,.0f} KiB (mlflow)")  # fmt: skip
    leadml_env = env
    mlflow_env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlruns' / 'mlflow.db'}"}
    servers = [
        Server("leadml serve",
               [str(BIN / "leadml"), "serve", "--port", str(ports["leadml"]), "--workers",
                str(args.workers), "--reload-seconds", "0"],
               leadml_env, work / "logs" / "leadml-serve.log",
               f"http://127.0.0.1:{ports['leadml']}/ready"),
        Server("mlflow models serve",
               [str(BIN / "mlflow"), "models", "serve", "-m", MODEL_URI, "--env-manager", "local",
                "-p", str(ports["mlflow"]), "-h", "127.0.0.1", "-w", str(args.workers)],
               mlflow_env, work / "logs" / "mlflow-serve.log",
               f"http://127.0.0.1:{ports['mlflow']}/ping"),
    ]  # fmt: skip
    code = 0
    try:
        for s in servers:
            s.start(work)
        deadline = time.perf_counter() + args.ready_timeout
        results["ready_s"] = {s.name: s.wait_ready(deadline) for s in servers}
        pgids = {s.proc.pid for s in servers if s.proc is not None}
        settle(pgids, max_s=60)  # the other worker may still be loading its model
        say("ready in " + ", ".join(f"{k} {v} s" for k, v in results["ready_s"].items()))
        status, ready = http(f"http://127.0.0.1:{ports['leadml']}/ready")
        served = json.loads(ready).get("model_version") if status == 200 else None
        if str(served) != str(version):
            raise RuntimeError(f"leadml serves version {served}, the champion is {version}")
        results["agreement"] = check_payloads(payloads, ports)
        a = results["agreement"]
        say(f"every payload answered 200; 100-lead batch: max |p_leadml - p_mlflow| = "
            f"{a['max_abs_probability_diff']:.2e}, {a['band_mismatches']} band mismatches")  # fmt: skip
        results["runs"] = measure(args, loadtest, payloads, ports, pgids)
        results["ratios"] = ratios(results["runs"])
        if any(loadtest.failed(r) for r in results["runs"]):
            say("\nWARNING: some requests failed (non-2xx or socket errors); see the table")
            code = 1
    except Exception as exc:  # noqa: BLE001 - record it, stop the servers, exit non-zero
        results["error"] = f"{type(exc).__name__}: {exc}"
        say(f"\nerror: {results['error']}")
        code = 1
    finally:
        for s in servers:
            s.stop()
    results["load_after"] = os.getloadavg()
    results["total_s"] = round(time.perf_counter() - t_all, 1)
    out = (args.json or work / "results.json").resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    if "runs" in results:
        say("\n" + table(results))
    say(f"\ndone in {results['total_s']} s (load {results['load_after']}); figures in {out}")
    return code


if __name__ == "__main__":
    sys.exit(main())
