"""monitor_report.py (the monitor's HTML page) and metrics.MonitorCollector (its gauges on
the service's /metrics)."""

from __future__ import annotations

import base64
import copy
import json
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from leadml.api import create_app
from leadml.config import ServeSettings, Settings
from leadml.metrics import ServiceMetrics, monitor_latest
from leadml.monitor_report import TOP_FEATURES, write_html

SECTIONS = (
    "Reasons",
    "Actions",
    "Model and period",
    "Readiness",
    "Discrimination (AUC)",
    "Calibration: do the bands convert as promised?",
    "Band shares over time",
    "Input drift: do new leads look like the training leads?",
)


@pytest.fixture
def result() -> dict:
    """A monitor result as `leadml monitor` writes it: every section filled in."""
    bands = [
        ("SQL", 150, 0.55, 0.31, 0.24, 0.39, 0.68, "alert"),
        ("MQL", 600, 0.22, 0.20, 0.17, 0.23, 0.21, "ok"),
        ("Unqualified", 1595, 0.04, 0.05, 0.04, 0.06, 0.04, "ok"),
    ]
    weeks = [(datetime(2026, 6, 1) + timedelta(weeks=i)).date().isoformat() for i in range(12)]
    features = [
        {
            "feature": f"f{i}",
            "label": f"Field <{i}>",
            "kind": "numeric" if i % 2 else "category",
            "psi": round(0.02 * i, 3),
            "missing_then": 0.0,
            "missing_now": 0.01 * (i % 3),
            "new_share": 0.0,
            "status": "alert" if 0.02 * i >= 0.25 else "warn" if 0.02 * i >= 0.1 else "ok",
            "reason": f"f{i}: moved" if 0.02 * i >= 0.1 else "",
        }
        for i in range(25)
    ]
    features.append(
        {
            "feature": "company_size",
            "label": "Company size",
            "kind": "category",
            "psi": None,
            "missing_then": 0.0,
            "missing_now": 0.4,
            "new_share": 0.12,
            "status": "alert",
            "reason": "company_size: 12% of leads have a size never seen in training",
        }
    )
    return {
        "created_at": (datetime.now(UTC) - timedelta(hours=2)).isoformat(),
        "verdict": "alert",
        "exit_code": 2,
        "reasons": ["SQL band converts 31% vs 68% expected", "Company size <drifted>"],
        "actions": ["retrain", "check the data feed"],
        "model": {"name": "leadml", "version": "3", "trained_at": "2026-05-01", "horizon_days": 30},
        "period": {"since": "2026-06-01T00:00:00+00:00", "until": "2026-08-30T00:00:00+00:00"},
        "readiness": {
            "ready": True,
            "leads": 2345,
            "conversions": 310,
            "reason": "enough matured data: 2,345 leads, 310 conversions",
        },
        "counts": {"scores": 5000, "leads": 3000, "matured": 2345, "no_outcome": 0},
        "discrimination": {
            "auc": 0.74,
            "low": 0.71,
            "high": 0.77,
            "expected": 0.79,
            "status": "warn",
        },
        "calibration": {
            "bands": [
                dict(
                    zip(
                        (
                            "band",
                            "leads",
                            "predicted",
                            "observed",
                            "low",
                            "high",
                            "expected",
                            "status",
                        ),
                        b,
                        strict=True,
                    )
                )
                for b in bands
            ],
            "grid": [
                {
                    "cell": "A1",
                    "leads": 80,
                    "predicted": 0.6,
                    "observed": 0.3,
                    "low": 0.2,
                    "high": 0.41,
                    "expected": 0.62,
                    "status": "alert",
                },
                {
                    "cell": "D4",
                    "leads": 900,
                    "predicted": 0.02,
                    "observed": None,
                    "low": None,
                    "high": None,
                    "expected": 0.02,
                    "status": "ok",
                },
            ],
        },
        "score_drift": {
            "bands": [
                {"band": "SQL", "share": 0.05, "expected": 0.06, "status": "ok"},
                {"band": "MQL", "share": 0.30, "expected": 0.22, "status": "warn"},
                {"band": "Unqualified", "share": 0.65, "expected": 0.72, "status": "ok"},
            ],
            "weekly": [
                {
                    "week": w,
                    "leads": 200 + i,
                    "shares": {"SQL": 0.05, "MQL": 0.2 + 0.01 * i, "Unqualified": 0.75 - 0.01 * i},
                }
                for i, w in enumerate(weeks)
            ],
        },
        "drift": {
            "sampled": 3000,
            "features": features,
            "drifted": [f["feature"] for f in features if f["status"] != "ok"],
            "thresholds": {"psi_warn": 0.1, "psi_alert": 0.25},
        },
    }


@pytest.fixture
def drift_only(result) -> dict:
    """No outcomes yet: not ready, nothing measured against conversions, only input drift."""
    out = copy.deepcopy(result)
    out.update(verdict="not_ready", exit_code=0, reasons=[], actions=[])
    out["readiness"] = {
        "ready": False,
        "leads": 12,
        "conversions": 1,
        "reason": "not enough matured data: 12 matured leads (need 1,000)",
    }
    out["discrimination"] = out["calibration"] = out["score_drift"] = None
    return out


class Page(HTMLParser):
    """What a reader (or a screen reader) finds on the page."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.images: list[dict] = []
        self.links: list[str] = []
        self.tables: dict[str, list[str]] = {}  # id -> header cells
        self.html_lang: str | None = None
        self.title = ""
        self._tag: str | None = None
        self._table: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self._tag = tag
        if tag == "html":
            self.html_lang = a.get("lang")
        elif tag == "img":
            self.images.append(a)
        elif tag == "table":
            self._table = a.get("id", "")
            self.tables[self._table] = []
        for key in ("src", "href"):
            if key in a:
                self.links.append(a[key])

    def handle_data(self, data):
        if self._tag in ("h1", "h2", "h3"):
            self.headings.append(data)
        elif self._tag == "title":
            self.title += data
        elif self._tag == "th" and self._table is not None:
            self.tables[self._table].append(data)

    def handle_endtag(self, tag):
        self._tag = None


def _page(result: dict, tmp_path) -> tuple[str, Page]:
    path = write_html(result, tmp_path / "monitor" / "report.html")
    text = path.read_text(encoding="utf-8")
    parser = Page()
    parser.feed(text)
    return text, parser


def _png(img: dict) -> bytes:
    src = img["src"]
    assert src.startswith("data:image/png;base64,")
    return base64.b64decode(src.split(",", 1)[1], validate=True)


def test_the_page_has_every_section_and_opens_offline(result, tmp_path):
    text, page = _page(result, tmp_path)
    assert page.html_lang == "en" and "alert" in page.title.lower()
    assert [h for h in SECTIONS if h not in page.headings] == []
    assert "Per grid cell" in page.headings
    assert len(page.images) == 3  # reliability, band shares, drift
    for img in page.images:
        assert _png(img).startswith(b"\x89PNG") and len(img.get("alt", "")) > 10
    assert not [x for x in page.links if re.match(r"\s*(https?:)?//", x)]
    assert "http://" not in text and "https://" not in text
    assert not list(tmp_path.glob("monitor/.*"))  # written through files: no temp left


def test_the_verdict_is_a_word_as_well_as_a_colour(result, drift_only, tmp_path):
    text, _ = _page(result, tmp_path)
    banner = text[text.index('class="banner"') :][:400]
    assert "ALERT" in banner and "#b3261e" in banner
    text, _ = _page(drift_only, tmp_path)
    assert "NOT READY" in text[text.index('class="banner"') :][:400]


def test_the_tables_have_headers_and_carry_the_figures(result, tmp_path):
    text, page = _page(result, tmp_path)
    assert {"model", "discrimination", "calibration", "grid", "band_shares", "drift"} <= set(
        page.tables
    )
    assert all(page.tables.values())  # every table has its <th> row
    drift_headers = set(page.tables["drift"])  # what the brief asks each drifted field to show
    assert {"feature", "label", "kind", "PSI", "status", "reason"} <= drift_headers
    assert {"missing then", "missing now", "new categories"} <= drift_headers
    # the SQL band's shortfall is on the page in figures, in a highlighted row
    assert re.search(
        r'<tr class="alert"><td>SQL</td><td>150</td><td>55.0%</td><td>31.0%</td>'
        r"<td>24.0% to 39.0%</td><td>68.0%</td>",
        text,
    )
    assert "0.740" in text and "0.710 to 0.770" in text and "0.790" in text
    # every field is in the table, the drifted ones marked, even the one without a PSI
    drift = text[text.index('<table id="drift">') :]
    assert drift.count("<tr") == len(result["drift"]["features"]) + 1
    assert "company_size" in drift and "12.0%" in drift and "40.0%" in drift
    assert f"{len(result['drift']['drifted'])} of {len(result['drift']['features'])} fields" in text


def test_text_from_the_result_is_escaped(result, tmp_path):
    text, _ = _page(result, tmp_path)
    assert "Company size &lt;drifted&gt;" in text and "<drifted>" not in text
    assert "Field &lt;3&gt;" in text


def test_sections_without_figures_say_so_in_words(drift_only, tmp_path):
    text, page = _page(drift_only, tmp_path)
    assert [h for h in SECTIONS if h not in page.headings] == []
    assert "Not measured: no outcomes" in text and "No kept scores in this period" in text
    assert "No action needed." in text and "not ready to judge" in text
    assert len(page.images) == 1 and _png(page.images[0]).startswith(b"\x89PNG")  # drift only
    bare = {k: None for k in ("discrimination", "calibration", "score_drift", "drift")}
    unregistered = {"name": None, "version": None, "trained_at": None, "horizon_days": 30}
    text, page = _page({"verdict": "not_ready", "model": unregistered} | bare, tmp_path)
    assert page.images == [] and "no training profile" in text and "None" not in text


def test_the_drift_chart_shows_at_most_the_top_fields(result, tmp_path):
    from leadml.monitor_report import plot_drift

    ax = plot_drift(result["drift"]).axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == TOP_FEATURES and labels[-1] == "Field <24>"  # biggest on top
    assert "Company size" not in labels  # no PSI: in the table, not the chart
    assert sorted(round(line.get_xdata()[0], 3) for line in ax.get_lines()) == [0.1, 0.25]


def _scrape(metrics: ServiceMetrics) -> dict[str, float]:
    text = metrics.exposition()[0].decode()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("leadml_monitor_")
    }


def test_the_gauges_follow_the_file_and_vanish_without_it(result, tmp_path):
    path = monitor_latest(tmp_path)
    metrics = ServiceMetrics(monitor_file=path)
    assert _scrape(metrics) == {}  # never run: no monitor series, no error
    path.parent.mkdir()
    path.write_text(json.dumps(result))
    assert _scrape(metrics)["leadml_monitor_verdict"] == 2
    result["verdict"] = "ok"
    result["discrimination"] = None
    path.write_text(json.dumps(result) + " ")  # another size: read again, even in the same tick
    series = _scrape(metrics)
    assert series["leadml_monitor_verdict"] == 0 and "leadml_monitor_auc" not in series
    path.write_text("{not json")
    assert _scrape(metrics) == {}
    path.unlink()
    assert _scrape(metrics) == {}


def test_the_gauges_show_on_every_worker(result, tmp_path, monkeypatch):
    """With PROMETHEUS_MULTIPROC_DIR the scrape builds its own registry: still there."""
    folder = tmp_path / "prom"
    folder.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    path = monitor_latest(tmp_path)
    path.parent.mkdir()
    path.write_text(json.dumps(result))
    metrics = ServiceMetrics(multiprocess=True, monitor_file=path)
    try:
        assert _scrape(metrics)["leadml_monitor_verdict"] == 2
    finally:
        metrics.close()


def test_the_service_metrics_carry_the_last_monitor_result(result, tmp_path):
    app = create_app(Settings.from_env(tmp_path), ServeSettings(reload_seconds=0))
    client = TestClient(app)  # no lifespan: /metrics needs no model
    before = client.get("/metrics").text
    assert "leadml_monitor_" not in before
    path = monitor_latest(tmp_path)
    path.parent.mkdir()
    path.write_text(json.dumps(result))
    lines = client.get("/metrics").text.splitlines()
    series = {
        x.rsplit(" ", 1)[0]: float(x.rsplit(" ", 1)[1])
        for x in lines
        if x.startswith("leadml_monitor_")
    }
    assert series["leadml_monitor_verdict"] == 2.0
    assert series["leadml_monitor_auc"] == 0.74 and series["leadml_monitor_auc_expected"] == 0.79
    assert series["leadml_monitor_drifted_features"] == len(result["drift"]["drifted"])
    assert series['leadml_monitor_band_observed_rate{band="SQL"}'] == 0.31
    assert series['leadml_monitor_band_predicted_rate{band="Unqualified"}'] == 0.04
    assert 2 * 3600 - 60 < series["leadml_monitor_report_age_seconds"] < 2 * 3600 + 600
