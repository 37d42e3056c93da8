"""The service's Prometheus metrics: requests and latency per route, leads per band, and
how the score store keeps up (scores queued, recorded, not recorded and why, store up), and
what the last `leadml monitor` found (read from its JSON file at scrape time)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from leadml.serving import LoadedModel

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
ROUTES = {
    "/predict",
    "/predict/batch",
    "/health",
    "/ready",
    "/model",
    "/metrics",
    "/admin/reload",
    "/docs",
    "/openapi.json",
    "/ledger",
    "/",
}
LEAD_ROUTES = ("/leads/{lead_id}", "/leads/{lead_id}/history")  # one series each, not per lead
VERDICT_VALUES = {"ok": 0, "warn": 1, "alert": 2, "not_ready": -1}


def monitor_latest(home: Path) -> Path:
    """Where `leadml monitor` keeps its last result and /metrics reads it."""
    return Path(home) / "monitor" / "latest.json"


class ServiceMetrics:
    """Prometheus metrics. With several workers (PROMETHEUS_MULTIPROC_DIR set, as `leadml
    serve` does), every worker writes its own files and /metrics adds them all up."""

    def __init__(self, multiprocess: bool = False, monitor_file: Path | None = None) -> None:
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            disable_created_metrics,
        )

        disable_created_metrics()  # the *_created series only add noise to a scrape
        self.registry = CollectorRegistry()
        self.multiprocess = multiprocess
        self.monitor = MonitorCollector(monitor_file) if monitor_file is not None else None
        if self.monitor is not None:
            self.registry.register(self.monitor)
        r = self.registry
        self.requests = Counter(
            "leadml_requests", "HTTP requests by route and status", ["route", "status"], registry=r
        )
        self.latency = Histogram(
            "leadml_request_duration_seconds",
            "Time to answer, by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.leads = Counter("leadml_leads_scored", "Leads scored, by band", ["band"], registry=r)
        self.rejected = Counter("leadml_leads_rejected", "Leads refused by validation", registry=r)
        self.reloads = Counter("leadml_model_reloads", "Models loaded after start-up", registry=r)
        self.model = Gauge(
            "leadml_model_info",
            "The model being served (value 1)",
            ["model", "version"],
            registry=r,
            multiprocess_mode="liveall",
        )
        self.queued = Gauge(
            "leadml_scores_queued",
            "Scores waiting to be written to the score store",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.recorded = Counter(
            "leadml_scores_recorded", "Scores written to the score store", registry=r
        )
        self.not_recorded = Counter(
            "leadml_scores_not_recorded",
            "Scores the store will not have: queue_full (the store was down too long), "
            "store_down_at_shutdown, shutdown, no_lead_id (a lead without an id of its own)",
            ["reason"],
            registry=r,
        )
        self.store = Gauge(
            "leadml_store_up",
            "1 while the score store takes writes, 0 during an outage",
            registry=r,
            multiprocess_mode="livemin",
        )

    def request(self, path: str, status: int, seconds: float) -> None:
        route = path if path in ROUTES else _lead_route(path)
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def scored(self, out: dict) -> None:
        counts: dict[str, int] = {}
        for p in out["predictions"]:
            counts[p["band"]] = counts.get(p["band"], 0) + 1
        for band, n in counts.items():
            self.leads.labels(band).inc(n)
        if out["rejected"]:
            self.rejected.inc(len(out["rejected"]))

    def scores_queued(self, n: int) -> None:
        self.queued.set(n)

    def scores_recorded(self, n: int) -> None:
        self.recorded.inc(n)

    def scores_not_recorded(self, reason: str, n: int) -> None:
        self.not_recorded.labels(reason).inc(n)

    def store_up(self, up: bool) -> None:
        self.store.set(1 if up else 0)

    def model_loaded(self, new: LoadedModel, old: LoadedModel | None) -> None:
        if old is not None:
            self.model.labels(old.name, old.version).set(0)
            self.reloads.inc()
        self.model.labels(new.name, new.version).set(1)

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        registry = self.registry
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            if self.monitor is not None:  # a file every worker reads, not a per-worker value
                registry.register(self.monitor)
        return generate_latest(registry), CONTENT_TYPE_LATEST

    def close(self) -> None:
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())


class MonitorCollector:
    """The last monitor result as gauges, read from its JSON file when scraped.

    Nothing is read at start-up: a report written after the service started shows at the next
    scrape. The parsed file is kept until its modification time or size changes, so a scrape
    costs one stat. No file (monitor never run) or an unreadable one: no monitor series."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._result: dict[str, Any] | None = None

    def describe(self) -> list:
        return []  # series come and go with the file; never read it at registration

    def read(self) -> dict[str, Any] | None:
        try:
            st = self.path.stat()
        except OSError:
            self._stamp, self._result = None, None
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            try:
                result = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                result = None  # written by hand or half-copied: skip it until it changes
            self._stamp = stamp
            self._result = result if isinstance(result, dict) else None
        return self._result

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        result = self.read()
        if result is None:
            return
        verdict = VERDICT_VALUES.get(str(result.get("verdict")))
        if verdict is not None:
            yield GaugeMetricFamily(
                "leadml_monitor_verdict",
                "Last monitor verdict: 0 ok, 1 warn, 2 alert, -1 not ready",
                value=verdict,
            )
        d = result.get("discrimination") or {}
        for key, name, doc in (
            ("auc", "leadml_monitor_auc", "ROC AUC of the kept scores on matured outcomes"),
            ("expected", "leadml_monitor_auc_expected", "ROC AUC on the model's test leads"),
        ):
            if _number(d.get(key)):
                yield GaugeMetricFamily(name, doc, value=d[key])
        drifted = (result.get("drift") or {}).get("drifted")
        if isinstance(drifted, list):
            yield GaugeMetricFamily(
                "leadml_monitor_drifted_features", "Input fields that drifted", value=len(drifted)
            )
        yield from _band_rates((result.get("calibration") or {}).get("bands") or [])
        age = _age_seconds(result.get("created_at"))
        if age is not None:
            yield GaugeMetricFamily(
                "leadml_monitor_report_age_seconds", "Seconds since the last monitor ran", value=age
            )


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _band_rates(bands: list[dict]) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    observed = GaugeMetricFamily(
        "leadml_monitor_band_observed_rate", "Observed conversion per band", labels=["band"]
    )
    predicted = GaugeMetricFamily(
        "leadml_monitor_band_predicted_rate", "Predicted conversion per band", labels=["band"]
    )
    for b in bands:
        if _number(b.get("observed")):
            observed.add_metric([str(b.get("band"))], b["observed"])
        if _number(b.get("predicted")):
            predicted.add_metric([str(b.get("band"))], b["predicted"])
    for family in (observed, predicted):
        if family.samples:
            yield family


def _age_seconds(created_at: Any) -> float | None:
    try:
        when = datetime.fromisoformat(str(created_at))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (datetime.now(UTC) - when).total_seconds()


def _lead_route(path: str) -> str:
    if path.startswith("/leads/"):
        return LEAD_ROUTES[1] if path.endswith("/history") else LEAD_ROUTES[0]
    return "other"
