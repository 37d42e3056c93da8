"""The served model: what is loaded, where it comes from, and the holder that swaps it.

`ModelSource` resolves `LEADML_MODEL_URI`: a registry alias (default
`models:/leadml@champion` on the embedded store), a fixed registry version, or an exported
model folder. Its `fingerprint()` is cheap (the alias's version, or the export's file
stamp), so `ModelHolder` can poll it and reload only when the champion moved.

Each request is scored by exactly one model: handlers read `holder.model` once, and a
reload swaps that reference only when the new model is fully loaded, so requests in flight
during a swap all finish on the model they started with.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from leadml.bands import OVERRIDE_FILE, read_saved
from leadml.champion import is_champion_path
from leadml.config import ServeSettings, Settings
from leadml.dataset import NA_WORDS
from leadml.errors import ModelError
from leadml.model import LeadScorer
from leadml.schemas import RequestModel

log = logging.getLogger("leadml.api")


@dataclass(frozen=True)
class LoadedModel:
    """One loaded model and everything derived from it; replaced whole on reload."""

    scorer: LeadScorer
    name: str
    version: str
    uri: str
    fingerprint: str
    loaded_at: str
    request: RequestModel  # what /predict validates against, made from the model's spec
    missing_markers: frozenset[str]  # flat models: text that training read as missing
    lines_stamp: str = ""  # the saved band lines' file as last applied ("" = none looked at)

    @classmethod
    def build(
        cls, scorer: LeadScorer, name: str, version: str, uri: str, fingerprint: str
    ) -> LoadedModel:
        return cls(
            scorer=scorer,
            name=name,
            version=version,
            uri=uri,
            fingerprint=fingerprint,
            loaded_at=datetime.now(UTC).isoformat(timespec="seconds"),
            request=RequestModel.from_spec(scorer.spec),
            missing_markers=_missing_markers(scorer),
        )

    def card(self) -> dict:
        c, spec = self.scorer.card, self.scorer.spec
        crm_inputs = ["events", "as_of"] if spec.kind == "crm" else []
        return {
            "name": self.name,
            "version": self.version,
            "uri": self.uri,
            "loaded_at": self.loaded_at,
            "trained_at": c.get("trained_at"),
            "kind": spec.kind,
            "horizon_days": c.get("horizon_days"),
            "data": c.get("data", {}),
            "metrics": c.get("metrics", {}),
            "baseline_metrics": c.get("baseline_metrics", {}),
            "thresholds": self.scorer.thresholds.as_dict(),
            "band_backtest": c.get("band_backtest", []),
            "features": c.get("features", []),
            "input_fields": spec.input_fields() + crm_inputs,
            "grades": _finite(c.get("grades")),
        }


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: the card's empty cells (NaN conversion) and unreachable
    cut points (infinite) become null."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


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
            raise ModelError(
                f"{self.uri}: no exported model here (scorer.json missing). Run `make demo` or "
                "`leadml promote`, or set LEADML_MODEL_URI to a models:/ URI"
            ) from None
        return f"{st.st_ino}-{st.st_mtime_ns}"

    def lines_path(self) -> Path:
        """Band lines saved from the workspace for this registered name (bands.py)."""
        from leadml.champion import export_root

        return export_root(self.settings) / OVERRIDE_FILE

    def lines_stamp(self) -> str:
        try:
            st = self.lines_path().stat()
        except OSError:
            return "none"
        return f"{st.st_ino}-{st.st_mtime_ns}"

    def with_lines(self, model: LoadedModel, stamp: str) -> LoadedModel:
        """`model` with the saved band lines when they were saved for this very version;
        lines saved for another version are left alone (said once in the log)."""
        saved = read_saved(self.lines_path())
        if saved is None or (saved.name, saved.version) != (model.name, model.version):
            if saved is not None:
                log.info(
                    "band lines saved for %s v%s, not %s v%s: the model's own lines stay",
                    saved.name,
                    saved.version,
                    model.name,
                    model.version,
                )
            return replace(model, lines_stamp=stamp)
        card = model.scorer.card | {
            "thresholds": saved.thresholds.as_dict(),
            "saved_lines": saved.as_dict(),
        }
        scorer = replace(model.scorer, thresholds=saved.thresholds, card=card)
        log.info(
            "band lines saved %s applied: SQL %g, MQL %g",
            saved.saved_at,
            saved.thresholds.sql,
            saved.thresholds.mql,
        )
        return replace(model, scorer=scorer, lines_stamp=stamp)

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
        return LoadedModel.build(
            scorer,
            registry.get("name", self.settings.model_name),
            str(registry.get("version", "export")),
            self.uri,
            fingerprint,
        )


Swapped = Callable[[LoadedModel, "LoadedModel | None"], None]


class ModelHolder:
    """Holds the model being served: loads it at start-up, polls the source, swaps it
    atomically (one reference assignment), and tells sibling workers to reload."""

    def __init__(
        self,
        source: ModelSource,
        serve: ServeSettings,
        model: LoadedModel | None = None,
        swapped: Swapped | None = None,
    ):
        self.source, self.serve, self.model = source, serve, model
        self.swapped = swapped  # called after each swap with (new, previous)
        self.lock = asyncio.Lock()
        self.last_error: str | None = None
        self.token = serve.reload_token  # shared by sibling workers
        self.token_seen = self._token_stamp()

    def ready(self) -> LoadedModel:
        """The model to score with; ModelError (503) while there is none."""
        model = self.model
        if model is None:
            raise ModelError(self.not_ready())
        return model

    def not_ready(self) -> str:
        return f"no model loaded ({self.last_error or 'still loading'})"

    def _token_stamp(self) -> int:
        try:
            return os.stat(self.token).st_mtime_ns if self.token else 0
        except OSError:
            return 0

    async def load(self, force: bool = False) -> LoadedModel | None:
        """Load when the source moved (or when forced); swap only a fully loaded model."""
        async with self.lock:
            current = self.model
            try:
                stamp = await asyncio.to_thread(self.source.fingerprint)
                lines = await asyncio.to_thread(self.source.lines_stamp)
                same = current is not None and stamp == current.fingerprint
                if not force and same and current is not None and lines == current.lines_stamp:
                    return None
                if not force and same and current is not None:  # only the band lines moved
                    new = await asyncio.to_thread(self.source.with_lines, current, lines)
                else:
                    loaded = await asyncio.to_thread(self.source.load, stamp)
                    new = await asyncio.to_thread(self.source.with_lines, loaded, lines)
            except Exception as exc:  # the service stays up on the model it has
                error = f"{type(exc).__name__}: {exc}"
                if error != self.last_error:  # retried every second: say it once
                    log.error("model not loaded from %s: %s", self.source.uri, error)
                self.last_error = error
                return None
            self.last_error = None
            self.model = new  # the swap: one reference assignment
            if self.swapped is not None:
                self.swapped(new, current)
            log.info("serving %s version %s from %s", new.name, new.version, new.uri)
            return new

    def announce(self) -> None:
        """Tell sibling workers (same token file) to reload now."""
        if self.token:
            with open(self.token, "a"):
                os.utime(self.token)
            self.token_seen = self._token_stamp()

    async def poll(self) -> None:
        reload_seconds = self.serve.reload_seconds
        tick = min(1.0, reload_seconds) if reload_seconds else 1.0
        last_check = time.monotonic()
        while True:
            await asyncio.sleep(tick)
            stamp = self._token_stamp()
            if stamp != self.token_seen:
                self.token_seen = stamp
                await self.load(force=True)
                last_check = time.monotonic()
            elif (
                reload_seconds and time.monotonic() - last_check >= reload_seconds
            ) or self.model is None:
                await self.load()
                last_check = time.monotonic()
