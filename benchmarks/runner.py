"""The shared runner of the benchmark subjects (bench_*.py) and of `benchmarks/run.py`.

A subject is a module with `NAME`, `DEFAULT` (runs when run.py names no subject), `QUICK`
(option values of a `--quick` smoke run), `add_options(parser)`, `run(args) -> dict` and
`markdown(section) -> list[str]`. `main([module, ...])` gives every subject script the same
life: common options (`--quick`, `--work`, sizes of the synthetic data, `--json`,
`--quiet-wait`, ...), one line of machine facts, each subject's figures printed as they are
measured, then its dict written as JSON and Markdown. The helpers here are what every script
used to repeat: a scratch environment without the caller's MLFLOW_/LEADML_ variables, child
processes with their own peak memory, CPU contention, waiting for a quiet machine, the
synthetic CRM folders and the small model, `leadml serve` started and awaited.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WORK = ROOT / "benchmarks" / "_work"
BIN = Path(sys.executable).parent  # the venv's bin: leadml, mlflow, uvicorn
GIB = 1024**3
VERSIONS = ("leadml", "numpy", "pandas", "pyarrow", "lightgbm", "sklearn", "mlflow")
COMMON_QUICK = {"leads": 3000, "demo_leads": 3000}


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


def f4(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def summary(values: Sequence[float]) -> dict:
    """Mean, std, min, max and count, to 4 decimals."""
    return {
        "mean": round(statistics.mean(values), 4),
        "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
        "min": round(min(values), 4),
        "max": round(max(values), 4),
        "n": len(values),
    }


def scratch_env(home: Path | str | None = None, **extra: str) -> dict:
    """This process's environment without the caller's MLFLOW_/LEADML_ variables (a benchmark
    reads and writes its own scratch home only), with LEADML_HOME=home when given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LEADML_"))}
    if home is not None:
        env["LEADML_HOME"] = str(home)
    env.update(extra)
    return env


# ----------------------------------------------------------------------------- memory, time


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


@contextlib.contextmanager
def timed(into: dict, key: str) -> Iterator[None]:
    t0 = time.perf_counter()
    try:
        yield
    finally:
        into[key] = round(time.perf_counter() - t0, 2)


def alternate(sides: dict[str, Callable[[], object]], reps: int) -> dict[str, list[float]]:
    """Seconds of each side per repetition, alternating the order (ab, ba, ab, ...) so that
    machine noise hits every side alike; paired ratios come from the same repetition."""
    names = list(sides)
    secs: dict[str, list[float]] = {name: [] for name in names}
    for r in range(reps):
        for name in names if r % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            sides[name]()
            secs[name].append(time.perf_counter() - t0)
    return secs


# ----------------------------------------------------------------------------- CPU contention


def machine_busy_s() -> float:
    """Busy CPU seconds of the whole machine (all but idle and iowait)."""
    vals = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(vals) - vals[3] - vals[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """CPU seconds of this process and of its children that have been waited for."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@contextlib.contextmanager
def contention(into: dict) -> Iterator[None]:
    """Record how many cores other processes kept busy meanwhile (the machine is shared).

    `others_cores` near 0: the figures are this code's own; near or above 1 on 2 cores: another
    process competed for the CPU and every timing in the step is suspect.
    """
    w0, b0, o0 = time.perf_counter(), machine_busy_s(), own_cpu_s()
    try:
        yield
    finally:
        w1, b1, o1 = time.perf_counter(), machine_busy_s(), own_cpu_s()
        wall = max(w1 - w0, 1e-9)
        into["cpu"] = {
            "wall_s": round(wall, 2),
            "own_cores": round((o1 - o0) / wall, 2),
            "others_cores": round(max(b1 - b0 - (o1 - o0), 0.0) / wall, 2),
        }


def warn_contended(usage: dict, what: str = "these timings are contended") -> None:
    busy = usage["cpu"]["others_cores"]
    if busy >= 0.2:
        say(f"    (other processes kept {busy} cores busy meanwhile: {what})")


# set from --quiet-wait by main(); read by run_child and the in-process steps
SETTINGS: dict = {"quiet_wait": 0.0, "keep_temp": False}


def wait_for_quiet(threshold: float = 0.25, window: float = 3.0, needed: int = 3) -> float:
    """Wait (at most --quiet-wait seconds) until other processes use < `threshold` cores for
    `needed` windows in a row; returns the seconds waited. A shared machine's neighbours
    (a test run, another benchmark) would otherwise be timed along with leadml."""
    max_wait = SETTINGS["quiet_wait"]
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
                others = usage["cpu"]["others_cores"]
                say(
                    f"    (waiting up to {max_wait:.0f} s for a quiet machine: others use {others} cores)"
                )
                told = True
    waited = round(time.perf_counter() - t0, 1)
    if told:
        say(f"    (waited {waited} s)")
    return waited


# ----------------------------------------------------------------------------- child processes


def _child_main(conn, target: Callable, args: tuple) -> None:
    try:
        out = target(*args)
    except BaseException:  # the driver reports it and goes on with the next section
        out = {"error": traceback.format_exc()}
    conn.send(out)
    conn.close()


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
    warn_contended(usage)
    return out


def run_command(cmd: list[str], cwd: Path, env: dict, log: Path, usage: dict) -> tuple[float, str]:
    """Run a command to its end, timed, its output kept in `log`; (seconds, stdout)."""
    wait_for_quiet()
    t0 = time.perf_counter()
    with contention(usage):
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    secs = time.perf_counter() - t0
    warn_contended(usage, "contended")
    log.write_text(
        f"$ {' '.join(map(str, cmd))}\n# exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, cmd))} failed with exit {proc.returncode}; see {log}\n{proc.stderr[-2000:]}"
        )
    return round(secs, 2), proc.stdout


def failed(section: str, out: dict) -> bool:
    """Say so and return True when a step's dict holds an error."""
    if "error" in out:
        say(f"[{section}] FAILED:\n{out['error']}")
        return True
    return False


def drop_temp(path: Path) -> None:
    """Remove a step's temp dir (LEADML_HOME, scores, fresh copy) once it succeeded, unless --keep-temp."""
    if not SETTINGS["keep_temp"]:
        shutil.rmtree(path, ignore_errors=True)


# ----------------------------------------------------------------------------- data, model


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
    work: Path, n_leads: int, seed: int, events_per_lead: float, regen: bool = False
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


def model_dir(work: Path, n_leads: int, seed: int, events_per_lead: float) -> Path:
    """Where the model fitted on that synthetic folder is kept (the training subject saves it)."""
    return work / f"model_{n_leads}_s{seed}_e{events_per_lead:g}"


def _fit_model_child(folder: str, save_to: str) -> dict:
    from leadml.config import TrainConfig
    from leadml.train import fit

    result, _ = fit(Path(folder), TrainConfig(), progress=False)
    result.scorer.save(save_to)
    return {"model": save_to, "best_iteration": result.data_summary["best_iteration"]}


def ensure_model(
    work: Path, n_leads: int, seed: int, events_per_lead: float, regen: bool = False
) -> Path:
    """A model fitted (default TrainConfig, no MLflow) on that synthetic folder, made once."""
    path = model_dir(work, n_leads, seed, events_per_lead)
    if (path / "scorer.json").exists():
        return path
    folder, _ = ensure_crm(work, n_leads, seed, events_per_lead, regen)
    say(f"[model] fitting one on {folder.name} -> {path}")
    fitted = run_child(_fit_model_child, str(folder), str(path))
    if "error" in fitted:
        raise RuntimeError(fitted["error"])
    return path


# ----------------------------------------------------------------------------- a server


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A server (`leadml serve`, `mlflow models serve`) in its own process group, so all its
    workers are stopped with it; ready when `ready_url` answers 200."""

    def __init__(self, name: str, cmd: list[str], env: dict, log: Path, ready_url: str):
        self.name, self.cmd, self.env = name, cmd, env
        self.log_path, self.ready_url = log, ready_url
        self.proc: subprocess.Popen | None = None
        self.started = 0.0

    def start(self, cwd: Path) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.started = time.perf_counter()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.cmd,
                env=self.env,
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

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


def leadml_server(port: int, env: dict, log: Path, *extra: str) -> Server:
    """`leadml serve` on loopback; ready when /ready answers 200."""
    cmd = [str(BIN / "leadml"), "serve", "--port", str(port), "--reload-seconds", "0", *extra]
    return Server("leadml serve", cmd, env, log, f"http://127.0.0.1:{port}/ready")


# ----------------------------------------------------------------------------- provenance


def git_state() -> dict:
    """The commit measured and uncommitted changes under src/ (read-only, takes no git locks)."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}

    def git(*cmd: str) -> str:
        res = subprocess.run(
            ["git", *cmd], cwd=ROOT, env=env, capture_output=True, text=True, check=False
        )
        return res.stdout.strip()

    return {
        "head": git("rev-parse", "--short", "HEAD"),
        "src_changes": git("status", "--porcelain", "src"),
    }


def machine_info(extra_versions: Sequence[str] = ()) -> dict:
    """CPU, cores, memory, Python and the versions of the libraries that matter."""
    from importlib.metadata import PackageNotFoundError, version

    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = round(int(line.split()[1]) * 1024 / GIB, 1)
    versions: dict = {}
    for name in (*VERSIONS, *extra_versions):
        try:
            versions[name] = version("scikit-learn" if name == "sklearn" else name)
        except PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


# ----------------------------------------------------------------------------- report


def md_table(title: str, rows: Sequence[tuple[str, object]]) -> list[str]:
    lines = [f"### {title}", "", "| figure | value |", "| --- | --- |"]
    lines.extend(f"| {k} | {v if isinstance(v, str) else fmt(v)} |" for k, v in rows)
    return [*lines, ""]


def contended(entry: dict) -> str:
    cpu = entry.get("cpu") or {}
    return "-" if not cpu else f"{cpu['others_cores']:.2f}"


def render_markdown(results: dict, modules: Sequence[ModuleType]) -> str:
    """Tables of the figures of one run (RESULTS.md is written from these plus notes)."""
    mi = results["machine"]
    before, after = results["git_before"], results["git_after"]
    lines = [
        f"run {results['started']}: `{results['command']}`",
        "",
        f"machine: {mi['cpu']}, {mi['cores']} cores, {mi['memory_gib']} GiB, Python {mi['python']}, "
        + ", ".join(f"{k} {v}" for k, v in mi["versions"].items())
        + f"; OMP_WAIT_POLICY={results.get('omp_wait_policy')}",
        "",
        f"library: commit {before['head']} at the start"
        + (" (src/ had uncommitted changes)" if before["src_changes"] else "")
        + f", {after['head']} at the end"
        + (" (src/ had uncommitted changes)" if after["src_changes"] else ""),
        "",
        "`others`: cores kept busy by other processes during the step (0 = quiet machine).",
        "",
    ]
    for module in modules:
        out = results["sections"].get(module.NAME, {})
        if "error" in out:
            lines += [
                f"### {module.NAME}: FAILED",
                "",
                "```",
                out["error"].strip()[-3000:],
                "```",
                "",
            ]
        elif out and "skipped" not in out:
            lines += module.markdown(out)
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run on tiny sizes ({', '.join(f'{k}={v}' for k, v in COMMON_QUICK.items())} and each subject's own)",
    )
    p.add_argument("--leads", type=int, default=1_000_000, help="leads of the synthetic data")
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
        help="leads of the small sample (demo, MLflow comparison, model)",
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
        help="keep the temp dirs of successful steps (homes with logs, MLflow stores, score files)",
    )
    p.add_argument(
        "--json",
        type=Path,
        default=None,
        help="write the figures as JSON here, and as Markdown next to it (default: <work>/<subject>.json, or results.json for several)",
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


def parse(
    modules: Sequence[ModuleType], argv: Sequence[str] | None, parser: argparse.ArgumentParser
) -> argparse.Namespace:
    """Common options plus every subject's; --quick replaces the defaults the user left alone."""
    add_common(parser)
    for module in modules:
        module.add_options(parser.add_argument_group(f"{module.NAME} ({module.__name__}.py)"))
    args = parser.parse_args(argv)
    if args.quick:
        quick = dict(COMMON_QUICK)
        for module in modules:
            quick.update(module.QUICK)
        for key, value in quick.items():
            if getattr(args, key, None) == parser.get_default(key):
                setattr(args, key, value)
    if args.leads < 100 or args.demo_leads < 100:
        parser.error("--leads and --demo-leads must be at least 100")
    for module in modules:
        check = getattr(module, "check_options", None)
        if check is not None:
            check(parser, args)
    return args


def main(
    modules: Sequence[ModuleType],
    argv: Sequence[str] | None = None,
    parser: argparse.ArgumentParser | None = None,
    command: str | None = None,
) -> int:
    """Run these subjects one after the other and write their figures; 1 when one failed."""
    if parser is None:
        (module,) = modules
        parser = argparse.ArgumentParser(
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(modules, argv, parser)
    if args.omp_passive:  # before anything loads LightGBM's OpenMP runtime; children inherit it
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    SETTINGS["quiet_wait"] = args.quiet_wait
    SETTINGS["keep_temp"] = args.keep_temp
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    names = [m.NAME for m in modules]
    script = command or f"benchmarks/{modules[0].__name__}.py"
    results: dict = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join([script, *argv]),
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
    say(
        f"subjects: {', '.join(names)}; {args.leads:,} leads{' (quick)' if args.quick else ''}; work {args.work}"
    )
    t_all = time.perf_counter()
    sec = results["sections"]
    for module in modules:
        try:
            sec[module.NAME] = module.run(args)
        except Exception:  # noqa: BLE001 - report it and go on with the next subject
            sec[module.NAME] = {"error": traceback.format_exc()}
            failed(module.NAME, sec[module.NAME])
    results["load_after"] = os.getloadavg()
    results["git_after"] = git_state()
    if results["git_after"] != results["git_before"]:
        say(
            f"NOTE: the library changed during the run: {results['git_before']} -> {results['git_after']}"
        )
    results["total_s"] = round(time.perf_counter() - t_all, 1)
    out = args.json or args.work / (f"{names[0]}.json" if len(names) == 1 else "results.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    md = out.with_suffix(".md")
    md.write_text(render_markdown(results, modules) + "\n")
    say(
        f"\ndone in {results['total_s']} s (load {results['load_after']}); figures in {out} and {md}"
    )
    return 1 if any("error" in v or v.get("failed") for v in sec.values()) else 0
