"""GET /ledger in a real headless browser (Debian's chromium, installed by `make test`):
the page renders the model card's numbers as the API returns them."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser

import httpx2
import pytest

from leadml.api import create_app
from leadml.config import ServeSettings
from tests.browser import serve_app

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium")
# flags for a sandboxed, offline machine (see the env notes): no background network at all
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class _Tables(HTMLParser):
    """Cells of every table with an id, as rendered (after the browser built the DOM)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.current: str | None = None
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "table":
            self.current = dict(attrs).get("id")
            self.tables[self.current or ""] = []
        elif tag == "tr" and self.current:
            self.tables[self.current].append([])
        elif tag in ("td", "th") and self.current:
            self.cell = []

    def handle_endtag(self, tag) -> None:
        if tag in ("td", "th") and self.current and self.cell is not None:
            self.tables[self.current][-1].append("".join(self.cell).strip())
            self.cell = None
        elif tag == "table":
            self.current = None

    def handle_data(self, data) -> None:
        if self.cell is not None:
            self.cell.append(data)


@pytest.fixture
def served(crm_model):
    with serve_app(create_app(serve=ServeSettings(reload_seconds=0), model=crm_model)) as base:
        yield base


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (make test installs it as root)"
)
def test_ledger_page_shows_the_model_card_numbers(served, tmp_path):
    card = httpx2.get(f"{served}/model").json()
    run = subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            f"{served}/ledger",
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    parser = _Tables()
    parser.feed(run.stdout)
    header, *rows = parser.tables["bands"]
    assert header[:2] == ["band", "leads"]
    shown = {r[0]: r for r in rows}
    assert (
        list(shown) == [b["band"] for b in card["band_backtest"]] == ["SQL", "MQL", "Unqualified"]
    )
    for b in card["band_backtest"]:
        _, leads, share, predicted, observed, lift = shown[b["band"]]
        assert leads == f"{b['leads']:,}" and observed == f"{b['observed']:.1%}"
        assert predicted == f"{b['predicted']:.1%}" and lift == f"{b['lift']:.2f}"
    metrics = {r[0]: r[1] for r in parser.tables["metrics"]}
    assert metrics["ROC AUC"] == f"{card['metrics']['roc_auc']:.4f}"
    assert f"version {card['version']}" in run.stdout
