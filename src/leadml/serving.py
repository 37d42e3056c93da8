"""What the service serves: where the model comes from, scoring a request, service metrics.

`ModelSource` resolves `LEADML_MODEL_URI`: a registry alias (default
`models:/leadml@champion` on the embedded store), a fixed registry version, or an exported
model folder. Its `fingerprint()` is cheap (the alias's version, or the export's file
stamp), so the service can poll it and reload only when the champion moved.

`score_request` turns validated leads into the same frames `leadml score` reads and calls
the one feature function, so `/predict` and `leadml score` give the same probabilities.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Union

import numpy as np
from pydantic import BaseModel, Field, TypeAdapter

from leadml import schemas
from leadml.champion import is_champion_path
from leadml.config import Settings
from leadml.dataset import NA_WORDS
from leadml.features import CRM_FIT, build_features
from leadml.model import LeadScorer
from leadml.records import request_tables

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
ROUTES = {"/predict", "/predict/batch", "/health", "/ready", "/model", "/metrics",
          "/admin/reload", "/docs", "/openapi.json", "/ledger", "/"}  # fmt: skip


@dataclass(frozen=True)
class LoadedModel:
    """One loaded model and everything derived from it; replaced whole on reload."""

    scorer: LeadScorer
    name: str
    version: str
    uri: str
    fingerprint: str
    loaded_at: str
    lead_type: type[BaseModel]
    body_type: Any
    body_adapter: TypeAdapter
    leads_adapter: TypeAdapter
    missing_markers: frozenset[str]  # flat models: text that training read as missing

    @classmethod
    def build(
        cls, scorer: LeadScorer, name: str, version: str, uri: str, fingerprint: str
    ) -> LoadedModel:
        lead = schemas.lead_model(scorer.spec)
        batch = schemas.batch_model(lead)
        # batch first: a flat model without required fields would take {"leads": ...} as a lead
        body: Any = Annotated[Union[batch, lead], Field(union_mode="left_to_right")]  # noqa: UP007
        return cls(
            scorer=scorer, name=name, version=version, uri=uri, fingerprint=fingerprint,
            loaded_at=datetime.now(UTC).isoformat(timespec="seconds"),
            lead_type=lead, body_type=Union[lead, batch],  # noqa: UP007 (a runtime type)
            body_adapter=TypeAdapter(body),
            leads_adapter=TypeAdapter(list[lead]),  # type: ignore[valid-type]
            missing_markers=_missing_markers(scorer),
        )  # fmt: skip

    def card(self) -> dict:
        c, spec = self.scorer.card, self.scorer.spec
        return {
            "name": self.name, "version": self.version, "uri": self.uri, "loaded_at": self.loaded_at,
            "trained_at": c.get("trained_at"), "kind": spec.kind, "horizon_days": c.get("horizon_days"),
            "data": c.get("data", {}), "metrics": c.get("metrics", {}),
            "baseline_metrics": c.get("baseline_metrics", {}), "thresholds": self.scorer.thresholds.as_dict(),
            "band_backtest": c.get("band_backtest", []), "features": c.get("features", []),
            "input_fields": spec.input_fields() + (["events", "as_of"] if spec.kind == "crm" else []),
        }  # fmt: skip


def _missing_markers(scorer: LeadScorer) -> frozenset[str]:
    """What a flat export's reader took for a missing value in training ("Select", "N/A", an
    empty cell): the reader's own words and the model's `missing_values`."""
    if scorer.spec.kind != "flat":
        return frozenset()
    return frozenset({"", *NA_WORDS, *(scorer.card.get("missing_values") or ())})


class ModelSource:
    """Where the served model comes from (LEADML_MODEL_URI) and how to tell it moved."""

    def __init__(self, settings: Settings, uri: str | None):
        self.settings = settings
        self.uri = uri or f"models:/{settings.model_name}@champion"
        self.registry = self.uri.startswith(("models:/", "runs:/"))
        # leadml's own export of the champion: kept in step with the registry alias
        self.champion_export = not self.registry and is_champion_path(settings, self.uri)

    def fingerprint(self) -> str:
        if self.registry:
            from leadml import tracking

            return tracking.resolve_version(self.settings, self.uri)
        if self.champion_export and self.settings.store_exists():
            from leadml import tracking

            tracking.try_reconcile(self.settings)  # finishes a promotion killed half-way
        path = Path(self.uri) / "scorer.json"
        try:
            st = path.stat()
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{self.uri}: no exported model here (scorer.json missing). Run `make demo` or "
                "`leadml promote`, or set LEADML_MODEL_URI to a models:/ URI"
            ) from None
        return f"{st.st_ino}-{st.st_mtime_ns}"

    def load(self, fingerprint: str) -> LoadedModel:
        if self.registry:
            from leadml import tracking

            uri = self.uri
            if uri.startswith("models:/"):  # the version resolved, not the alias: no race
                uri = f"models:/{uri.removeprefix('models:/').split('@')[0].split('/')[0]}/{fingerprint}"
            scorer = tracking.load_scorer(self.settings, uri)
            name = uri.removeprefix("models:/").split("/")[0]
            version = fingerprint if self.uri.startswith("models:/") else "run"
            return LoadedModel.build(scorer, name, version, self.uri, fingerprint)
        scorer = LeadScorer.load(Path(self.uri).resolve())  # one version, even mid-switch
        registry = scorer.card.get("registry", {})
        return LoadedModel.build(scorer, registry.get("name", self.settings.model_name),
                                 str(registry.get("version", "export")), self.uri, fingerprint)  # fmt: skip


def score_request(model: LoadedModel, parsed: schemas.ParsedRequest, reasons: bool) -> dict:
    """Score one request's validated leads; the response body (see schemas.PredictResponse)."""
    return score_requests(model, [(parsed, reasons)])[0]


def score_requests(
    model: LoadedModel, requests: list[tuple[schemas.ParsedRequest, bool]]
) -> list[dict]:
    """Score the leads of several requests in one pass of the feature function and the model.

    Leads are told apart by position, so ids may repeat across the requests.
    """
    scorer, spec = model.scorer, model.scorer.spec
    owner = [(r, i) for r, (parsed, _) in enumerate(requests) for i in parsed.indices]
    leads = [lead for parsed, _ in requests for lead in parsed.leads]
    results: list[dict] = [
        {"model": model.name, "model_version": model.version, "predictions": [],
         "rejected": list(parsed.rejected), "notes": _request_notes(parsed)}
        for parsed, _ in requests
    ]  # fmt: skip
    if not leads:
        return results
    default_ids = [str(i + 1) for _, i in owner]
    frame, events, as_of = request_tables(spec, leads, default_ids, model.missing_markers)
    feats = build_features(frame, events, spec, as_of=as_of, source="request")
    for row in feats.rejects.frame.itertuples() if len(feats.rejects) else ():
        r, i = owner[int(row.row)]  # validation should have refused these already
        results[r]["rejected"].append({"lead": i, "lead_id": str(row.lead_id),
                                       "field": str(row.field), "message": str(row.reason)})  # fmt: skip
    rows = feats.X.index.to_numpy()
    X = feats.X.to_numpy(np.float64)
    out = scorer.score_features(X)
    wanted = np.array([requests[owner[k][0]][1] for k in rows], dtype=bool)
    why: list[dict | None] = [None] * len(X)
    if wanted.any():
        for j, reason in zip(
            np.flatnonzero(wanted),
            scorer.reasons(X[wanted], probability=out["probability"][wanted]),
            strict=True,
        ):
            why[int(j)] = reason
    not_sent = [m for parsed, _ in requests for m in _per_lead(parsed.missing, parsed.leads)]
    notes = _lead_notes(spec, leads, rows, feats.unseen_rows, not_sent)
    for k, row in enumerate(rows):
        results[owner[row][0]]["predictions"].append({
            "lead_id": _lead_id(spec, leads[row], feats.ids[k]), "probability": round(float(out["probability"][k]), 6),
            "score": int(out["score"][k]), "band": str(out["band"][k]), "reasons": why[k],
            "notes": notes[k], "model": model.name, "model_version": model.version,
        })  # fmt: skip
    for result in results:
        result["rejected"].sort(key=lambda e: e["lead"])
    return results


def _request_notes(parsed: schemas.ParsedRequest) -> list[str]:
    if not parsed.ignored_fields:
        return []
    return ["fields not used by this model were ignored: " + _names(parsed.ignored_fields)]


def _names(names: list[str], most: int = 10, longest: int = 60) -> str:
    """Field names for a note: at most `most`, each cut at `longest` characters (they come from
    the caller, and a key can be a megabyte long)."""
    shown = [n if len(n) <= longest else n[:longest] + "..." for n in names[:most]]
    return ", ".join(shown) + (f" and {len(names) - most} more" if len(names) > most else "")


def _per_lead(values: list, leads: list) -> list:
    return values if len(values) == len(leads) else [[] for _ in leads]


_MAX_TURNS = 50
_BUSY_SECONDS = 0.005  # a pass ended this recently: more requests are on their way
_GATHER_SECONDS = 0.001


class Batcher:
    """Scores small concurrent requests together, one feature pass for all of them.

    Fixed costs (building frames, one `Booster.predict` call) dominate a one-lead request:
    one lead costs 1.7 ms, eight about 2 ms. When the previous pass ended moments ago (the
    service is busy, more requests are on their way) a pass first waits 1 ms; then it lets
    requests still being read and validated (`arriving`, counted by the handler) join, and
    scores them all. An idle service scores a request at once. Each request is scored by the
    model it was validated against.
    """

    def __init__(self) -> None:
        self.pending: list[tuple[LoadedModel, schemas.ParsedRequest, bool, asyncio.Future]] = []
        self.wakeup = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.arriving = 0  # requests between arrival and `score` (maintained by the handler)
        self.last_pass = 0.0

    async def score(self, model: LoadedModel, parsed: schemas.ParsedRequest, reasons: bool) -> dict:
        loop = asyncio.get_running_loop()
        if self.loop is not loop or self.task is None or self.task.done():
            # first request, or a new event loop (test clients start one per session)
            self.loop, self.wakeup, self.pending = loop, asyncio.Event(), []
            self.task = loop.create_task(self._run())
        future = loop.create_future()
        self.pending.append((model, parsed, reasons, future))
        self.wakeup.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self.wakeup.wait()
            if time.monotonic() - self.last_pass < _BUSY_SECONDS:
                await asyncio.sleep(_GATHER_SECONDS)  # busy: let the next requests catch up
            for _ in range(_MAX_TURNS):
                if not self.arriving:
                    break
                await asyncio.sleep(0)  # let requests being validated join this pass
            self.wakeup.clear()
            items, self.pending = self.pending, []
            for group in _groups(items):
                try:
                    outs = score_requests(group[0][0], [(p, r) for _, p, r, _ in group])
                except Exception as exc:  # reaches each waiting request as its own error
                    for *_, future in group:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (*_, future), out in zip(group, outs, strict=True):
                    if not future.done():
                        future.set_result(out)
            self.last_pass = time.monotonic()

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


def _groups(items: list) -> list[list]:
    """Pending requests grouped by the model they were validated against (normally one)."""
    groups: dict[int, list] = {}
    for item in items:
        groups.setdefault(id(item[0]), []).append(item)
    return list(groups.values())


def _lead_id(spec, lead: dict, feature_id) -> str:
    return str(lead["lead_id"]) if spec.kind == "crm" else str(feature_id)


def _lead_notes(
    spec, leads: list[dict], rows: np.ndarray, unseen_rows: dict[str, np.ndarray],
    not_sent: list[list[str]],
) -> list[list[str]]:  # fmt: skip
    """Notes per scored lead (`rows`: positions in `leads`), each naming the request field:
    a value the model never saw, and the model's fields the lead left out."""
    notes: list[list[str]] = [[] for _ in rows]
    source = _source_fields(spec) if unseen_rows else {}
    for feature, mask in unseen_rows.items():
        name = source[feature]
        text = f"{name}: a value not seen in training, scored as unknown"
        for k in np.flatnonzero(mask).tolist():
            # a field left out can become a value never seen ("Unknown" region): not sent, not new
            if _given(leads[rows[k]].get(name)) and text not in notes[k]:
                notes[k].append(text)
    for k, row in enumerate(rows.tolist()):
        if not_sent[row]:
            notes[k].append("not sent, scored as missing: " + _names(not_sent[row]))
    return notes


def _given(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _source_fields(spec) -> dict[str, str]:
    """Feature -> the request field it is made from (export names may contain " (")."""
    if spec.kind == "crm":
        return {feature: source for feature, (source, _) in CRM_FIT.items()}
    out: dict[str, str] = {}
    for c in spec.columns:
        parts = ("seniority", "department") if c.kind == "title" else ()
        out.update(dict.fromkeys([f"{c.name} ({p})" for p in parts] or [c.name], c.name))
    return out


class ServiceMetrics:
    """Prometheus metrics. With several workers (PROMETHEUS_MULTIPROC_DIR set, as `leadml
    serve` does), every worker writes its own files and /metrics adds them all up."""

    def __init__(self) -> None:
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            disable_created_metrics,
        )

        disable_created_metrics()  # the *_created series only add noise to a scrape
        self.registry = CollectorRegistry()
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        r = self.registry
        self.requests = Counter("leadml_requests", "HTTP requests by route and status",
                                ["route", "status"], registry=r)  # fmt: skip
        self.latency = Histogram("leadml_request_duration_seconds", "Time to answer, by route",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.leads = Counter("leadml_leads_scored", "Leads scored, by band", ["band"], registry=r)
        self.rejected = Counter("leadml_leads_rejected", "Leads refused by validation", registry=r)
        self.reloads = Counter("leadml_model_reloads", "Models loaded after start-up", registry=r)
        self.model = Gauge("leadml_model_info", "The model being served (value 1)",
                           ["model", "version"], registry=r, multiprocess_mode="liveall")  # fmt: skip

    def request(self, path: str, status: int, seconds: float) -> None:
        route = path if path in ROUTES else "other"
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
