"""Shared fixtures: small synthetic CRM data, a flat export, an isolated leadml home.

Which tests cover which module. tests/test_<module>.py are a module's own tests; where a
module has none of its own, or a test file is named for a subject, it is listed here.
  commands.py                          test_cli.py (every command through cli.main)
  batcher.py, metrics.py, deps.py      test_serving.py (fakes), test_api.py (slow)
  history.py                           test_routes_leads.py (slow), test_cli.py (history)
  parsing.py                           test_schemas.py
  routes_pages.py                      test_routes_pages.py (the card page); in a browser:
                                       test_ledger_page.py (slow)
  routes_predict/_model/_pages.py      test_api.py, test_api_hostile.py, test_fuzz.py (slow);
                                       /ledger in a browser: test_ledger_page.py (slow)
  api.py, config.Environment           test_api_settings.py, test_api_imports.py (what a
                                       service worker imports)
  champion.py                          test_promotion.py (slow), test_tracking.py
  train.py, promote.py with MLflow     test_train_mlflow.py, test_promotion.py (slow); without
                                       it: test_train.py, test_promote.py (a fake registry)
  features.py                          test_features.py (through build_features); its parts:
                                       test_fit_features.py, test_engagement.py
  engine.py                            a Protocol: test_local_engine.py, test_dask.py
  dask_*.py                            test_dask.py (slow, a real 2-worker cluster; also
                                       dask_tables.py and dask_scoring.py on the cluster)
Integration tests (slow, named for a subject, no module of their own): test_input.py
(real-world exports), test_reasons.py (reasons add up), test_xeducation.py, test_faults.py and test_benchmarks.py (benchmarks/),
test_notebooks.py (notebooks/). test_architecture.py (fast) keeps docs/architecture.md naming
every module.

PostgreSQL: `postgresql_server` starts one throwaway server per session (tests/pg.py: initdb
in a temp folder, a unix socket, as the `postgres` user when run as root);
`postgresql_url` is an empty database of it for one test. Where no server binary exists, the
tests that need one are skipped, with the reason and what to install.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Before anything imports LightGBM or MLflow: both read these once, when they are loaded. Set
# after `leadml.train` is imported, OMP_WAIT_POLICY did nothing, and two test runs at once
# (or one beside a benchmark) each fitted about 4x slower on a 2-core machine.
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does; see benchmarks/RESULTS.md

import numpy as np
import pandas as pd
import pytest

from leadml import records, synth
from leadml.config import TrainConfig
from leadml.serving import LoadedModel
from leadml.train import fit

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
XEDU = SHARED / "xeducation_leads.csv"
XEDU_CONFIG = Path(__file__).resolve().parents[1] / "data" / "configs" / "xeducation.yaml"
# the id first, then the columns a fair model leaves out: the one list is the config file's
XEDU_DROP = [(_flat := TrainConfig.from_yaml(XEDU_CONFIG).flat).id_column, *_flat.drop]


@pytest.fixture(scope="session")
def postgresql_server():
    """A real PostgreSQL server for the session (tests/pg.py), stopped and deleted after."""
    from tests import pg

    try:
        with pg.server() as server:
            yield server
    except pg.Unavailable as e:  # raised before the server starts, never after the yield
        pytest.skip(f"no PostgreSQL server for the PostgreSQL tests: {e}")


@pytest.fixture
def postgresql_url(postgresql_server) -> str:
    """A `postgresql+psycopg://` URL of an empty database of its own."""
    return postgresql_server.new_database()


@pytest.fixture(scope="session")
def crm_small() -> synth.SynthResult:
    return synth.make_crm(3000, seed=11)


@pytest.fixture(scope="session")
def crm_dir(tmp_path_factory, crm_small) -> Path:
    out = tmp_path_factory.mktemp("crm") / "sample"
    synth.write_crm(crm_small, out, "csv")
    return out


def make_flat(n: int = 1500, seed: int = 3) -> pd.DataFrame:
    """A flat export unlike the sample: ';'-separated in tests, yes/no target, mixed columns."""
    rng = np.random.default_rng(seed)
    visits = rng.poisson(4, n)
    minutes = rng.gamma(2, 10, n).round(1)
    plan = rng.choice(["Free", "Pro", "Team", "Select"], n, p=[0.4, 0.3, 0.2, 0.1])
    region = rng.choice(["North", "South", "East", "West"], n)
    newsletter = rng.choice(["yes", "no"], n)
    logit = (
        -2
        + 0.25 * visits
        + 0.04 * minutes
        + np.select([plan == "Pro", plan == "Team"], [1.0, 1.5], 0)
        + 0.5 * (newsletter == "yes")
    )
    won = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame(
        {
            "customer_ref": [f"C{i:06d}" for i in range(n)],
            "contact_email": [f"person{i}@example.org" for i in range(n)],
            "web_visits": visits,
            "minutes_on_site": minutes,
            "plan_interest": plan,
            "sales_region": region,
            "newsletter": newsletter,
            "owner_notes": rng.choice(["called", "left voicemail", "won - signed"], n),
            "won": np.where(won, "yes", "no"),
        }
    )


@pytest.fixture(scope="session")
def flat_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("flat") / "export.csv"
    make_flat().to_csv(path, sep=";", index=False)
    return path


@pytest.fixture(autouse=True)
def _score_store_in_tmp(tmp_path, monkeypatch) -> None:
    """Each test's scores go to a SQLite file of its own: the default, a file under the
    home, would land in the working folder for the tests that build the service with no home."""
    monkeypatch.setenv("LEADML_STORE_URL", f"sqlite:///{tmp_path / 'store.db'}")


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An isolated LEADML_HOME with its own sqlite tracking store."""
    monkeypatch.setenv("LEADML_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


@pytest.fixture(scope="session")
def crm_result(crm_dir):
    """The small CRM sample trained once per session (no baseline), for every test that
    needs a fitted CRM model."""
    result, _ = fit(crm_dir, TrainConfig.model_validate({"model": {"baseline": False}}))
    return result


@pytest.fixture(scope="session")
def crm_model(tmp_path_factory, crm_result):
    result = crm_result
    path = result.scorer.save(tmp_path_factory.mktemp("crm_model") / "model")
    return LoadedModel.build(result.scorer, "leadml", "7", str(path), "fp-7")


@pytest.fixture(scope="session")
def flat_model(tmp_path_factory, flat_csv):
    cfg = TrainConfig.model_validate(
        {"flat": {"target": "won", "id_column": "customer_ref"}, "model": {"baseline": False}}
    )
    result, _ = fit(flat_csv, cfg)
    path = result.scorer.save(tmp_path_factory.mktemp("flat_model") / "model")
    return LoadedModel.build(result.scorer, "leadml", "3", str(path), "fp-3")


@pytest.fixture(scope="session")
def crm_records(crm_small):
    """Request-shaped leads (profile + events + as_of) from the synthetic CRM, with PII."""
    leads = crm_small.leads
    cut = pd.Timestamp(crm_small.meta["as_of"])
    alive = leads[pd.to_datetime(leads["created_at"]) < cut].head(40)
    events = crm_small.events[crm_small.events["lead_id"].isin(alive["lead_id"])]
    rec = records.from_tables(alive, events, cut)
    rec = rec.drop(columns=[c for c in ("converted", "converted_at") if c in rec])
    rows = rec.astype(object).where(rec.notna(), None).to_dict("records")
    for r in rows:
        r["events"] = json.loads(r["events"])
        r["lead_id"] = str(r["lead_id"])
    return rows


@pytest.fixture(scope="session")
def xedu_model(tmp_path_factory):
    """The fair X Education model (skips the test when the file is not on this machine)."""
    if not XEDU.exists():
        pytest.skip(f"{XEDU} not on this machine")
    cfg = TrainConfig.model_validate(
        {"flat": {"target": "Converted", "drop": XEDU_DROP}, "model": {"baseline": False}}
    )
    result, _ = fit(XEDU, cfg)
    path = result.scorer.save(tmp_path_factory.mktemp("xedu_model") / "model")
    return LoadedModel.build(result.scorer, "leadml", "1", str(path), "fp-x")


@pytest.fixture(scope="session")
def xedu_leads() -> list[dict]:
    """The first 50 X Education leads as a caller sends them ("Select" as in the file)."""
    if not XEDU.exists():
        pytest.skip(f"{XEDU} not on this machine")
    rows = pd.read_csv(XEDU, dtype=str).head(50).drop(columns=[*XEDU_DROP, "Converted"])
    return rows.astype(object).where(rows.notna(), None).to_dict("records")


@dataclass
class Served:
    url: str
    port: int
    log: str = ""  # what the server printed, once it has stopped


@contextlib.contextmanager
def leadml_serve(home: Path, *args: str) -> Iterator[Served]:
    """A real `leadml serve` (uvicorn) on a free loopback port with `home` as LEADML_HOME,
    ready before the block starts; stopped (SIGTERM) after it, its output in `.log`."""
    import httpx2

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "LEADML_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "leadml.cli", "serve", "--port", str(port), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    served = Served(f"http://127.0.0.1:{port}", port)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx2.get(f"{served.url}/ready", timeout=1).status_code == 200:
                break
        except httpx2.TransportError:
            pass
        assert proc.poll() is None, proc.stdout.read().decode()
        time.sleep(0.3)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("leadml serve did not become ready in 90 s")
    try:
        yield served
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        served.log = proc.communicate(timeout=30)[0].decode()
