"""Write-behind recording of the service's scores into the score store.

The request path only appends what scoring computed (`scoring.Scored`) to a bounded queue;
one thread per worker turns it into `store.ScoreRecord`s (fingerprint, reason points) and
writes them in batches, one transaction each. A store that is down (database gone, disk
full) costs no prediction: the scores wait in the queue and are written when it answers
again (retried with a short backoff); beyond the queue's bound they are dropped and counted.
An outage is logged once when it starts and once when it ends, never per row. `close()`
writes what is left at shutdown.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np

from leadml.grades import LABELS
from leadml.privacy import looks_personal
from leadml.scoring import Scored
from leadml.store import ScoreRecord, ScoreStore

log = logging.getLogger("leadml.recorder")


class StoreUnavailable(Exception):
    """The score store cannot be opened or read right now."""


class RecorderMetrics(Protocol):
    """What the recorder reports (`metrics.ServiceMetrics` implements it)."""

    def scores_queued(self, n: int) -> None: ...  # waiting now
    def scores_recorded(self, n: int) -> None: ...
    def scores_not_recorded(self, reason: str, n: int) -> None: ...
    def store_up(self, up: bool) -> None: ...


class _NoMetrics:
    def scores_queued(self, n: int) -> None:
        pass

    def scores_recorded(self, n: int) -> None:
        pass

    def scores_not_recorded(self, reason: str, n: int) -> None:
        pass

    def store_up(self, up: bool) -> None:
        pass


def records(*passes: Scored) -> list[ScoreRecord]:
    """Store rows for the leads of scoring passes that have an id of their own. No personal
    data: the rows hold ids, scores, grades, reason points and the derived features (as
    `store.fingerprint` rounds them); a lead whose id itself looks like an email address or a
    phone number is left out. Runs on the writer thread, which shares the interpreter with
    the requests: consecutive passes of one model are joined (most are of one lead), and
    columns are turned into Python lists once per group, not per lead."""
    rows: list[ScoreRecord] = []
    start = 0
    for end in range(1, len(passes) + 1):
        if end == len(passes) or not _same_model(passes[start], passes[end]):
            rows.extend(_rows(passes[start:end]))
            start = end
    return rows


def _same_model(a: Scored, b: Scored) -> bool:  # as_of may differ: it is kept per pass
    return (a.model, a.model_version, a.features) == (b.model, b.model_version, b.features)


def _rows(group: tuple[Scored, ...]) -> list[ScoreRecord]:
    first = group[0]
    X = first.X if len(group) == 1 else np.vstack([s.X for s in group])
    out = {name: np.concatenate([np.asarray(s.out[name]) for s in group]) for name in first.out}
    ids = [lead_id for s in group for lead_id in s.lead_ids]
    times = [s.scored_at for s in group for _ in s.lead_ids]
    as_of = [s.as_of for s in group for _ in s.lead_ids]
    reasons = [why for s in group for why in s.reasons]
    order = sorted(range(len(first.features)), key=first.features.__getitem__)
    names = [first.features[j] for j in order]
    features = X[:, order].tolist()
    probability = np.round(np.asarray(out["probability"], np.float64), 6).tolist()
    score = np.asarray(out["score"]).astype(int).tolist()
    band = [str(b) for b in out["band"]]
    grades = {name: [_grade(v) for v in out[name]] for name in LABELS if name in out}
    rows = []
    for k, lead_id in enumerate(ids):
        if lead_id is None or looks_personal(lead_id):
            continue
        why = reasons[k]
        points = (
            tuple((r["field"], float(r["points"])) for r in why["positive"] + why["negative"])
            if why
            else ()
        )
        rows.append(
            ScoreRecord(
                lead_id=lead_id,
                scored_at=times[k],
                as_of=as_of[k],
                model_name=first.model,
                model_version=first.model_version,
                probability=probability[k],
                score=score[k],
                band=band[k],
                reasons=points,
                fingerprint=_rounded(names, features[k]),
                **{name: values[k] for name, values in grades.items()},  # type: ignore[arg-type]
            )
        )
    return rows


def _rounded(names: list[str], values: list[float]) -> tuple[tuple[str, float], ...]:
    """`store.fingerprint` of features already in name order (missing values left out)."""
    return tuple(
        (name, float(f"{value:.3g}"))
        for name, value in zip(names, values, strict=True)
        if math.isfinite(value)
    )


def record_now(
    store: ScoreStore, scored: Scored, webhook_urls: tuple[str, ...] = (), chunk: int = 10_000
) -> int:
    """Write one scoring pass at once, a transaction per `chunk` rows (`leadml score`: no
    queue, it is not in a hurry). Returns how many scores were kept."""
    rows = records(scored)
    for start in range(0, len(rows), chunk):
        store.record(rows[start : start + chunk], webhook_urls)
    return len(rows)


def _grade(value) -> str | bool | None:
    if value is None:
        return None
    return bool(value) if isinstance(value, bool | np.bool_) else str(value)


class Recorder:
    """A bounded queue of scoring passes and the thread that writes them to the store.

    `keep` is the `scoring.Keep` hook: O(1), no database work, safe from any thread.
    `open_store` is called by the writer (and by readers) until it succeeds, so a store that
    is down at start-up is opened once it is back.
    """

    def __init__(
        self,
        open_store: Callable[[], ScoreStore],
        webhook_urls: tuple[str, ...] = (),
        metrics: RecorderMetrics | None = None,
        capacity: int = 100_000,
        batch: int = 1000,
        linger: float = 0.2,
        backoff: tuple[float, float] = (0.5, 10.0),
    ) -> None:
        self.open_store, self.webhook_urls = open_store, webhook_urls
        self.metrics = metrics or _NoMetrics()
        self.capacity, self.batch, self.linger, self.backoff = capacity, batch, linger, backoff
        self.queue: collections.deque[Scored] = collections.deque()
        self.queued = 0  # leads waiting (with or without an id; counted as they came)
        self.taken = 0  # passes taken from the queue by the writer (less those put back)
        self.written = 0  # passes done with: written, or given up at shutdown
        self.recorded = 0  # rows written since start
        self.lost = 0  # leads dropped: queue full, or the store still down at shutdown
        self.down_since: float | None = None
        self.failures = 0  # failed writes since start
        self.cond = threading.Condition()
        self.closing = False
        self.urgent = False
        self.thread: threading.Thread | None = None
        self._store: ScoreStore | None = None
        self._store_lock = threading.Lock()

    # ---- the request path ---------------------------------------------------------------

    def keep(self, scored: Scored) -> None:
        """Queue one scoring pass; beyond the bound it is dropped and counted."""
        n = len(scored.lead_ids)
        with self.cond:
            dropped = "shutdown" if self.closing else None
            if self.queued + n > self.capacity:
                dropped = "queue_full"
            if dropped:
                self.lost += n
            else:
                self.queue.append(scored)
                self.queued += n
                if self.queued >= self.batch:
                    self.cond.notify()
        if dropped:  # the queued gauge is the writer's: nothing else to do on the request path
            self.metrics.scores_not_recorded(dropped, n)

    # ---- life -----------------------------------------------------------------------------

    def start(self) -> None:
        if self.thread is None:
            self.metrics.store_up(True)  # until a write says otherwise
            self.thread = threading.Thread(target=self._run, name="leadml-recorder", daemon=True)
            self.thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (one more try if the store is down), then stop the writer."""
        with self.cond:
            self.closing = True
            self.cond.notify_all()
        if self.thread is not None:
            self.thread.join(timeout)
        if self._store is not None:
            self._store.engine.dispose()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued before this call is written (or given up on); False
        on timeout. Readers call it so that a lead scored a moment ago is found."""
        with self.cond:
            target = self.taken + len(self.queue)
            if self.written >= target:
                return True
            failures = self.failures
            self.urgent = True  # no lingering, and a writer waiting out an outage tries now
            self.cond.notify_all()
            self.cond.wait_for(lambda: self.written >= target or self.failures > failures, timeout)
            return self.written >= target

    def store(self) -> ScoreStore:
        """The open store, opened now if it was not yet; StoreUnavailable when it cannot be."""
        with self._store_lock:
            if self._store is None:
                try:
                    self._store = self.open_store()
                except Exception as exc:
                    raise StoreUnavailable(error_words(exc)) from None
            return self._store

    # ---- the writer thread ----------------------------------------------------------------

    def _run(self) -> None:
        wait = self.backoff[0]
        while True:
            with self.cond:
                self.cond.wait_for(lambda: self.queue or self.closing)
                if not self.queue:
                    return  # closing, nothing left
                if not (self.closing or self.urgent or self.queued >= self.batch):
                    self.cond.wait(self.linger)  # let a batch gather
                taken = self._take()
                queued = self.queued
            self.metrics.scores_queued(queued)
            ok = self._write(taken)
            with self.cond:
                if ok or self.closing:
                    self.written += len(taken)
                    self.urgent = self.urgent and bool(self.queue)
                    self.cond.notify_all()
                    wait = self.backoff[0]
                    if not ok:  # shutting down with the store still down: give up
                        lost = sum(len(s.lead_ids) for s in taken) + self._drop_all()
                        self.lost += lost
                        self.metrics.scores_not_recorded("store_down_at_shutdown", lost)
                        self.metrics.scores_queued(0)
                        log.warning(
                            "score store still unavailable at shutdown: %d scores not recorded",
                            lost,
                        )
                        return
                    continue
                # store down: put the passes back in front, in order, and wait a little
                self.queue.extendleft(reversed(taken))
                self.taken -= len(taken)
                self.queued += sum(len(s.lead_ids) for s in taken)
                self.metrics.scores_queued(self.queued)
                self.failures += 1
                self.urgent = False
                self.cond.notify_all()  # a reader waiting in flush() stops waiting
            with self.cond:  # new scores do not wake this wait: only close() and flush() do
                self.cond.wait_for(lambda: self.closing or self.urgent, wait)
            wait = min(wait * 2, self.backoff[1])

    def _take(self) -> list[Scored]:
        """Passes from the front of the queue, about `batch` leads' worth (caller holds cond)."""
        taken: list[Scored] = []
        n = 0
        while self.queue and (not taken or n + len(self.queue[0].lead_ids) <= self.batch):
            scored = self.queue.popleft()
            taken.append(scored)
            n += len(scored.lead_ids)
        self.queued -= n
        self.taken += len(taken)
        return taken

    def _drop_all(self) -> int:
        n = self.queued
        self.taken += len(self.queue)
        self.written += len(self.queue)
        self.queue.clear()
        self.queued = 0
        return n

    def _write(self, taken: list[Scored]) -> bool:
        """One transaction for the taken passes; False (logged once per outage) on failure."""
        try:
            rows = records(*taken)
        except Exception:  # a bug, not an outage: find the pass, write the others
            rows = []
            for scored in taken:
                try:
                    rows.extend(records(scored))
                except Exception as exc:
                    log.error(
                        "scores not recorded: %s turning a scoring pass into rows",
                        error_words(exc),
                    )
                    self.metrics.scores_not_recorded("error", len(scored.lead_ids))
        try:
            self.store().record(rows, self.webhook_urls)
        except Exception as exc:
            if self.down_since is None:
                self.down_since = time.monotonic()
                self.metrics.store_up(False)
                log.warning(
                    "score store unavailable (%s): scores are kept in memory (up to %d) and "
                    "written when it is back",
                    error_words(exc),
                    self.capacity,
                )
            return False
        if self.down_since is not None:
            log.warning(
                "score store back after %.0f s; the queued scores are being written",
                time.monotonic() - self.down_since,
            )
            self.down_since = None
        self.metrics.store_up(True)
        self.recorded += len(rows)
        self.metrics.scores_recorded(len(rows))
        unkept = sum(1 for s in taken for lead_id in s.lead_ids if lead_id is None)
        if unkept:  # flat leads sent without an id of their own
            self.metrics.scores_not_recorded("no_lead_id", unkept)
        return True


def error_words(exc: BaseException) -> str:
    """An error in a few words that never quote data: the driver's message for a database
    error (SQLAlchemy hides the parameters), the type alone otherwise."""
    orig = getattr(exc, "orig", None)
    if orig is not None:
        first = (str(orig).splitlines() or [""])[0][:200]
        return f"{type(orig).__name__}: {first}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return type(exc).__name__
