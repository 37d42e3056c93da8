"""The scheduling examples (serve/cronjob.yaml, the README's cron line) call commands that
exist with options they take, and act on the exit codes as they say: run with a stand-in
`leadml` that exits with each code in turn and records what it was asked."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from leadml.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def containers() -> dict[str, str]:
    """Each CronJob's shell script (or command), by job name."""
    out = {}
    for doc in yaml.safe_load_all((ROOT / "serve" / "cronjob.yaml").read_text()):
        assert doc["apiVersion"] == "batch/v1" and doc["kind"] == "CronJob"
        pod = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        (c,) = pod["containers"]
        out[doc["metadata"]["name"]] = (
            c["args"][0] if c["command"][:2] == ["/bin/sh", "-c"] else shlex.join(c["command"])
        )
    return out


def cron_line() -> str:
    text = (ROOT / "README.md").read_text()
    (line,) = re.findall(r"^0 6 \* \* \* .*$", text, re.M)
    return line.split(" ", 5)[5]


def calls(script: str) -> list[list[str]]:
    found = re.findall(r"(?:^|[\s;|])(?:\S*/bin/)?leadml ([^;|&]*)", script)
    return [shlex.split(m) for m in found]


@pytest.mark.parametrize("script", [*containers().values(), cron_line()])
def test_every_call_parses_with_the_real_command_line(script):
    found = calls(script)
    assert found, script
    for argv in found:
        args = build_parser().parse_args([a for a in argv if a != "|"])
        assert args.command in ("monitor", "retrain")


def run(script: str, codes: dict[str, int], tmp_path: Path) -> tuple[int, list[str]]:
    """Run `script` with `leadml` (and .venv/bin/leadml) a stand-in exiting with `codes`."""
    bin_dir = tmp_path / "bin"
    (tmp_path / ".venv" / "bin").mkdir(parents=True, exist_ok=True)
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "log"
    fake = bin_dir / "leadml"
    fake.write_text(
        "#!/bin/sh\n"
        f'for a in "$@"; do case "$a" in -*) ;; *) echo "$a" >> {log}; break;; esac; done\n'
        + "".join(f'[ "$2" = {c} ] && exit {n}\n' for c, n in codes.items())
        + "exit 0\n"
    )
    fake.chmod(0o755)
    (tmp_path / ".venv" / "bin" / "leadml").symlink_to(fake)
    script = script.replace("cd /srv/leadml && ", "")
    env = os.environ | {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(["/bin/sh", "-c", script], cwd=tmp_path, env=env)
    ran = log.read_text().split() if log.exists() else []
    return done.returncode, ran


@pytest.mark.parametrize(("monitor", "retrains"), [(0, False), (1, False), (2, True), (3, False)])
def test_the_monitor_job_retrains_on_alert_only_and_keeps_its_code(tmp_path, monitor, retrains):
    code, ran = run(containers()["leadml-monitor"], {"monitor": monitor}, tmp_path)
    assert code == monitor  # the Job fails on warn / alert / error, so it shows
    assert ran == (["monitor", "retrain"] if retrains else ["monitor"])


@pytest.mark.parametrize(("retrain", "job"), [(0, 0), (1, 0), (3, 0), (2, 2)])
def test_the_retrain_job_fails_only_on_errors(tmp_path, retrain, job):
    code, ran = run(containers()["leadml-retrain"], {"retrain": retrain}, tmp_path)
    assert (code, ran) == (job, ["retrain"])


@pytest.mark.parametrize(("monitor", "retrains"), [(0, False), (1, False), (2, True)])
def test_the_readme_cron_line_retrains_on_alert_only(tmp_path, monitor, retrains):
    _, ran = run(cron_line(), {"monitor": monitor}, tmp_path)
    assert ran == (["monitor", "retrain"] if retrains else ["monitor"])
