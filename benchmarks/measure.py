"""How the benchmarks measure: time, peak memory, CPU taken by others, child processes.

Every heavy step runs in a fresh interpreter (`run_child`, multiprocessing "spawn"), so its
peak RSS is its own; `contention` records how many cores other processes kept busy meanwhile
(the machines are shared); `alternate` times two sides in turns so that noise hits both.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import resource
import shutil
import statistics
import subprocess
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

GIB = 1024**3


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


# ----------------------------------------------------------------------------- process groups


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


class CpuMeter:
    """Cores used by the servers, by the client (this process and wrk) and by everybody else."""

    def __init__(self, pgids: set[int]):
        self.pgids = pgids

    def __enter__(self) -> CpuMeter:
        self.t0, self.busy0 = time.perf_counter(), machine_busy_s()
        self.srv0, self.own0 = _group_cpu_s(self.pgids), own_cpu_s()
        return self

    def __exit__(self, *exc) -> None:
        wall = max(time.perf_counter() - self.t0, 1e-9)
        srv = _group_cpu_s(self.pgids) - self.srv0
        own = own_cpu_s() - self.own0
        busy = machine_busy_s() - self.busy0
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
