"""The benchmark scripts (benchmarks/) stay runnable: each imports, answers --help, and one
subject runs end to end on tiny sizes. Timings are not checked here (no timed tests)."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCH.glob("bench_*.py"))


@pytest.fixture(scope="module")
def bench_path():
    sys.path.insert(0, str(BENCH))
    yield
    sys.path.remove(str(BENCH))


def test_run_py_knows_every_subject_script(bench_path):
    run = importlib.import_module("run")
    assert sorted(f"bench_{name}.py" for name in run.SUBJECTS) == SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_subject_module_has_the_runner_interface(bench_path, script):
    module = importlib.import_module(script.removesuffix(".py"))
    assert module.NAME and isinstance(module.DEFAULT, bool) and isinstance(module.QUICK, dict)
    assert callable(module.add_options) and callable(module.run) and callable(module.markdown)
    parser = argparse.ArgumentParser()
    module.add_options(parser.add_argument_group("x"))
    for key in module.QUICK:  # --quick may only change options the subject has
        assert any(a.dest == key for a in parser._actions) or key in ("leads", "demo_leads")


def test_quick_changes_only_the_sizes_left_at_their_default(bench_path):
    runner = importlib.import_module("runner")
    training = importlib.import_module("bench_training")
    args = runner.parse([training], ["--quick"], argparse.ArgumentParser())
    assert (args.leads, args.demo_leads, args.mlflow_reps) == (3000, 3000, 1)
    args = runner.parse([training], ["--quick", "--leads", "5000"], argparse.ArgumentParser())
    assert (args.leads, args.demo_leads) == (5000, 3000)
    args = runner.parse([training], [], argparse.ArgumentParser())
    assert (args.leads, args.demo_leads, args.mlflow_reps) == (1_000_000, 20_000, 2)


def test_scratch_env_leaves_out_the_callers_mlflow_and_leadml_variables(bench_path, monkeypatch):
    fixtures = importlib.import_module("fixtures")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    monkeypatch.setenv("LEADML_EXPORT_DIR", "/elsewhere")
    env = fixtures.scratch_env("/tmp/home", OMP_WAIT_POLICY="PASSIVE")
    assert "MLFLOW_TRACKING_URI" not in env and "LEADML_EXPORT_DIR" not in env
    assert env["LEADML_HOME"] == "/tmp/home" and env["OMP_WAIT_POLICY"] == "PASSIVE"
    assert env["PATH"]


@pytest.mark.parametrize("script", ["run.py", *SCRIPTS])
def test_every_script_answers_help(script):
    done = subprocess.run(
        [sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "--quick" in done.stdout and "--work" in done.stdout


@pytest.mark.slow
def test_the_features_subject_runs_quick_through_run_py(tmp_path):
    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "features", "--quick", "--work", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    figures = json.loads((tmp_path / "features.json").read_text())["sections"]["features"]
    assert figures["leads"] == figures["rows"] == 3000
    assert figures["load_breakdown"]["same_result"] is True
    assert "### features" in (tmp_path / "features.md").read_text()


def test_the_grades_subject_prints_the_ordering_checks(tmp_path):
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_grades.py"), "--quick", "--work", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    figures = json.loads((tmp_path / "grades.json").read_text())["sections"]["grades"]
    checks = figures["synthetic"]["checks"]
    assert checks and all({"check", "observed", "ok"} <= set(c) for c in checks)
    assert "fit pooled: A > B > C > D" in done.stdout
    assert "### grades" in (tmp_path / "grades.md").read_text()


def test_the_store_subject_times_history_reads_on_both_databases(tmp_path):
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_store.py"), "--quick", "--work", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    figures = json.loads((tmp_path / "store.json").read_text())["sections"]["store"]
    sqlite = figures["sqlite"]
    assert sqlite["scores"] == 20_000 and sqlite["history"]["n"] == 200
    assert sqlite["history"]["entries_per_read"] == 10  # every lead found with all its scores
    assert sqlite["period_day"]["rows"] == 2000 and sqlite["period_all"]["rows"] == 20_000
    assert sqlite["fingerprints"]["found"] == sqlite["fingerprints"]["ids"] == 2000
    postgresql = figures["postgresql"]  # measured, or left out with the reason
    assert "skipped" in postgresql or postgresql["history"]["entries_per_read"] == 10
    assert "### store" in (tmp_path / "store.md").read_text()


def test_paired_ratios_are_medians_of_each_rounds_ratio(bench_path):
    """A neighbour that loads the machine in one round weighs on both sides of that round's
    ratio: the pair's ratio is the median of the per-round ratios, not a ratio of medians."""
    serving = importlib.import_module("bench_serving")

    def run(turn, variant, rps, p99):
        cpu = {"server_cores": rps / 1000, "others_cores": 0.0}
        return {
            "scenario": "single_c8_reasons",
            "round": turn,
            "variant": variant,
            "requests_per_s": rps,
            "p50_ms": p99 / 2,
            "p99_ms": p99,
            "cpu": cpu,
        }

    rounds = [(1, 900, 1000, 10, 10), (2, 450, 500, 20, 16), (3, 800, 1000, 12, 10)]
    runs = [run(t, "on", a, pa) for t, a, _, pa, _ in rounds]
    runs += [run(t, "off", b, pb) for t, _, b, _, pb in rounds]
    (row,) = serving.store_ratios(runs)
    assert row["throughput_ratio_per_round"] == [0.9, 0.9, 0.8]
    assert row["throughput_ratio"] == 0.9 and row["p99_ratio"] == 1.2
    assert row["on"]["requests_per_s"] == 800 and row["off"]["requests_per_s"] == 1000
    assert row["within_goal"] is True  # x0.90 >= x0.85
    runs = [
        dict(r, requests_per_s=r["requests_per_s"] * 0.8) if r["variant"] == "on" else r
        for r in runs
    ]
    assert serving.store_ratios(runs)[0]["within_goal"] is False
