"""The shared runner of the benchmark subjects (bench_*.py) and of `benchmarks/run.py`.

A subject is a module with `NAME`, `DEFAULT` (runs when run.py names no subject), `QUICK`
(option values of a `--quick` smoke run), `add_options(parser)`, `run(args) -> dict` and
`markdown(section) -> list[str]`. `main([module, ...])` gives every subject script the same
life: common options (`--quick`, `--work`, sizes of the synthetic data, `--json`,
`--quiet-wait`, ...), one line of machine facts, each subject's figures printed as they are
measured, then its dict written as JSON and Markdown. What every script used to repeat lives
in measure.py (time, peak memory, CPU taken by others, child processes, waiting for a quiet
machine) and fixtures.py (a scratch environment without the caller's MLFLOW_/LEADML_
variables, the synthetic CRM folders, the small model, a server started and awaited).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from fixtures import DEFAULT_WORK, ROOT
from measure import GIB, SETTINGS, failed, fmt, say

VERSIONS = ("leadml", "numpy", "pandas", "pyarrow", "lightgbm", "sklearn", "mlflow")
COMMON_QUICK = {"leads": 3000, "demo_leads": 3000}


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
