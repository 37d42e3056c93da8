"""The service's Prometheus metrics: requests and latency per route, leads per band, and
how the score store keeps up (scores queued, recorded, not recorded and why, store up)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

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


class ServiceMetrics:
    """Prometheus metrics. With several workers (PROMETHEUS_MULTIPROC_DIR set, as `leadml
    serve` does), every worker writes its own files and /metrics adds them all up."""

    def __init__(self, multiprocess: bool = False) -> None:
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
        return generate_latest(registry), CONTENT_TYPE_LATEST

    def close(self) -> None:
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())


def _lead_route(path: str) -> str:
    if path.startswith("/leads/"):
        return LEAD_ROUTES[1] if path.endswith("/history") else LEAD_ROUTES[0]
    return "other"
