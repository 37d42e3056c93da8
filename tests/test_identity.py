"""Scores before and after the renovation are the same, to 1e-12.

The code before it is the git tag `pre-renovation`. `git archive` puts its `src` in a
temporary folder; one subprocess runs the old code (PYTHONPATH=<tmp>/src), another the
current code, each the same frozen snippet (`SNIPPET`): synthesise the demo data, train with
the command line into its own LEADML_HOME, load the exported champion and score the data
with `LeadScorer.score_leads`, saving the probabilities at full precision. The same for the
X Education export with its leaky columns dropped, as `/work/baseline/run.sh` does.

The snippet uses only what exists, unchanged, in both versions: the command line (`synth`,
`train`, `score`), `dataset.load_crm` / `load_flat` / `ReadOptions` and `LeadScorer`. If a
later change renames one of these, change the snippet so that it still runs on both.

Skipped when this is not a git checkout or the tag is missing (a local `git clone` brings
the tags along; nothing is fetched from the network).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import XEDU
from tests.conftest import XEDU_DROP as XEDU_DROP_ALL

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TAG = "pre-renovation"
DEMO_LEADS, DEMO_SEED = 3000, 42
XEDU_DROP = ",".join(XEDU_DROP_ALL[1:])  # "Prospect ID" is the --id

SNIPPET = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path

    import numpy as np
    import pandas as pd

    import leadml
    from leadml import dataset
    from leadml.cli import main
    from leadml.model import LeadScorer

    src, kind, data, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
    assert Path(leadml.__file__).resolve().is_relative_to(src.resolve()), leadml.__file__
    home = Path(os.environ["LEADML_HOME"])
    if kind == "demo":
        assert main(["-q", "synth", "--out", str(data), "--leads", sys.argv[5],
                     "--seed", sys.argv[6], "--format", "csv"]) == 0
        assert main(["-q", "train", "--data", str(data)]) == 0
        assert main(["-q", "score", "--data", str(data), "--out", str(out / "scores.csv")]) == 0
        scorer = LeadScorer.load(home / "models" / "champion")
        tables = dataset.load_crm(data, dataset.ReadOptions(), require_outcome=False)
        stamps = [tables.leads["created_at"].max(), tables.events["occurred_at"].max()]
        as_of = max(pd.Timestamp(s) for s in stamps) + pd.Timedelta(seconds=1)
        source = "leads"
    else:
        assert main(["-q", "train", "--name", "xedu", "--data", str(data), "--target", "Converted",
                     "--id", "Prospect ID", "--drop", sys.argv[5]]) == 0
        assert main(["-q", "score", "--name", "xedu", "--data", str(data),
                     "--out", str(out / "scores.csv")]) == 0
        scorer = LeadScorer.load(home / "models" / "xedu" / "champion")
        card = scorer.card
        options = dataset.ReadOptions(missing_values=tuple(card.get("missing_values", ())))
        tables = dataset.load_flat(data, target=card.get("target"), id_column=scorer.spec.id_column,
                                   options=options, require_target=False)
        as_of, source = None, data.name
    frame, _ = scorer.score_leads(tables.leads, tables.events, as_of=as_of, source=source)
    np.save(out / "probability.npy", frame["probability"].to_numpy(np.float64))
    np.save(out / "ids.npy", frame[scorer.spec.id_column].astype(str).to_numpy(str))
    """
)


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def old_src(tmp_path_factory) -> Path:
    """The `src` folder of the tag `pre-renovation`, extracted with `git archive`."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed: cannot read the code before the renovation")
    if _git("rev-parse", "--git-dir").returncode != 0:
        pytest.skip(f"{ROOT} is not a git checkout: no code before the renovation to compare with")
    if _git("rev-parse", "--verify", "--quiet", f"{TAG}^{{commit}}").returncode != 0:
        pytest.skip(f"git tag {TAG!r} missing in {ROOT} (a shallow or tag-less clone?)")
    archive = _git("archive", "--format=tar", TAG, "src")
    assert archive.returncode == 0, archive.stderr.decode()
    root = tmp_path_factory.mktemp("pre_renovation")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(root, filter="data")
    return root / "src"


def _run(src: Path, work: Path, kind: str, data: Path, *extra: str) -> Path:
    """The snippet with the leadml in `src`, in its own LEADML_HOME; returns its output folder."""
    out = work / "out"
    out.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LEADML_"))}
    env |= {
        "PYTHONPATH": str(src),
        "LEADML_HOME": str(work / "home"),
        "MLFLOW_LOGGING_LEVEL": "WARNING",
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    done = subprocess.run(
        [sys.executable, "-c", SNIPPET, str(src), kind, str(data), str(out), *extra],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, f"{kind} with {src} failed:\n{done.stdout}\n{done.stderr}"
    return out


def _assert_same(old: Path, new: Path) -> None:
    ids_old, ids_new = np.load(old / "ids.npy"), np.load(new / "ids.npy")
    p_old, p_new = np.load(old / "probability.npy"), np.load(new / "probability.npy")
    assert len(p_old) == len(p_new) == len(ids_new) > 0
    assert (ids_old == ids_new).all(), "the leads come out in another order or with other ids"
    assert np.abs(p_old - p_new).max() <= 1e-12
    scores_old = pd.read_csv(old / "scores.csv", dtype=str)
    scores_new = pd.read_csv(new / "scores.csv", dtype=str)
    pd.testing.assert_frame_equal(scores_old, scores_new)  # ids, probability, score, band


def test_demo_scores_are_those_before_the_renovation(old_src, tmp_path):
    old = _run(
        old_src,
        tmp_path / "old",
        "demo",
        tmp_path / "old" / "sample",
        str(DEMO_LEADS),
        str(DEMO_SEED),
    )
    new = _run(
        ROOT / "src",
        tmp_path / "new",
        "demo",
        tmp_path / "new" / "sample",
        str(DEMO_LEADS),
        str(DEMO_SEED),
    )
    for table in ("leads.csv", "events.csv"):  # the same synthetic data, first of all
        old_bytes = (tmp_path / "old" / "sample" / table).read_bytes()
        assert old_bytes == (tmp_path / "new" / "sample" / table).read_bytes(), table
    _assert_same(old, new)


@pytest.mark.skipif(not XEDU.exists(), reason=f"{XEDU} not on this machine")
def test_xeducation_scores_are_those_before_the_renovation(old_src, tmp_path):
    old = _run(old_src, tmp_path / "old", "xedu", XEDU, XEDU_DROP)
    new = _run(ROOT / "src", tmp_path / "new", "xedu", XEDU, XEDU_DROP)
    _assert_same(old, new)
