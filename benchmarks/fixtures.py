"""What the benchmarks measure on: a scratch environment, the synthetic CRM folders, a small
model, and servers (`leadml serve`, `mlflow models serve`) started and awaited."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from measure import gib, peak_rss_bytes, run_child, say, timed

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WORK = ROOT / "benchmarks" / "_work"
BIN = Path(sys.executable).parent  # the venv's bin: leadml, mlflow, uvicorn


def scratch_env(home: Path | str | None = None, **extra: str) -> dict:
    """This process's environment without the caller's MLFLOW_/LEADML_ variables (a benchmark
    reads and writes its own scratch home only), with LEADML_HOME=home when given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LEADML_"))}
    if home is not None:
        env["LEADML_HOME"] = str(home)
    env.update(extra)
    return env


def strip_env() -> None:
    """Drop the caller's MLFLOW_/LEADML_ variables from this process's own environment."""
    for name in [k for k in os.environ if k.startswith(("MLFLOW_", "LEADML_"))]:
        del os.environ[name]


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


def cached_folder(folder: Path, regen: bool, doing: str, target, *args) -> tuple[dict, bool]:
    """(facts, reused) of a data folder made once by `target(*args)` in a child process and
    reused while its marker file is there (--regen makes it again)."""
    marker = folder / "bench-data.json"
    if marker.exists() and not regen:
        info = json.loads(marker.read_text())
        say(f"[data] reusing {folder} ({info['leads']:,} leads, {info['events']:,} events)")
        return info, True
    if folder.exists():
        shutil.rmtree(folder)
    say(f"[data] {doing} into {folder} ...")
    info = run_child(target, *args)
    if "error" in info:
        raise RuntimeError(info["error"])
    marker.write_text(json.dumps(info, indent=2))
    return info, False


def ensure_crm(
    work: Path, n_leads: int, seed: int, events_per_lead: float, regen: bool = False
) -> tuple[Path, dict]:
    """The synthetic CRM folder for this size (Parquet), generated once and reused."""
    folder = work / f"crm_{n_leads}_s{seed}_e{events_per_lead:g}"
    doing = f"generating {n_leads:,} leads (seed {seed})"
    make = (_generate_child, n_leads, seed, events_per_lead, str(folder))
    info, reused = cached_folder(folder, regen, doing, *make)
    info["reused"] = reused
    if not reused:
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
    workers are stopped with it; ready when `ready_url` answers 200. Its stderr (and its stdout
    unless stdout=False) goes to `log`."""

    def __init__(
        self, name: str, cmd: list[str], env: dict, log: Path, ready_url: str, stdout: bool = True
    ):
        self.name, self.cmd, self.env, self.stdout = name, cmd, env, stdout
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
                stdout=log if self.stdout else subprocess.DEVNULL,
                stderr=subprocess.STDOUT if self.stdout else log,
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
