"""Band-change webhooks: sign each event and deliver the outbox (issue 16, third part).

`ScoreStore.record` puts one outbox row per band change and receiver in the same transaction
as the score; this module posts them. Each body is sent exactly as stored, with

    Content-Type: application/json
    Idempotency-Key: <event id>              (also in the body as "idempotency_key")
    X-Leadml-Timestamp: <unix seconds when sent>
    X-Leadml-Signature: sha256=<hex HMAC-SHA256 of f"{timestamp}.".encode() + body>

The timestamp is inside the signed bytes, so a captured request cannot be replayed later with
a fresh timestamp; `verify` is what a receiver runs (and may copy). A 2xx answer is delivered;
anything else, or no answer within the timeout, is tried again after a random wait between 0
and min(cap, base * 2^attempt) ("full jitter": receivers coming back are not hit by every
sender at once), until 48 h after the event, when the entry becomes `failed` and waits for
`leadml webhooks --replay`. A receiver deduping on the key sees each event once.

`Sender.deliver_due(now)` is one pass, with the clock given (tests need no waiting);
`background` runs passes every second in a thread beside the service. Several senders may
share one store: each entry is claimed atomically (`ScoreStore.claim`) before it is posted.
Only `store` touches the database. The secret is never logged, stored or printed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit, urlunsplit

if TYPE_CHECKING:
    from leadml.config import StoreSettings
    from leadml.store import OutboxEntry, ScoreStore

log = logging.getLogger("leadml.webhooks")
SIGNATURE = "X-Leadml-Signature"
TIMESTAMP = "X-Leadml-Timestamp"
IDEMPOTENCY_KEY = "Idempotency-Key"


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The signature header's value: sha256=<hex> over f"{timestamp}.".encode() + body."""
    signed = f"{timestamp}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signed_headers(body: bytes, secret: str, event_id: str, timestamp: int) -> dict[str, str]:
    """Every header an event is posted with."""
    return {
        "Content-Type": "application/json",
        IDEMPOTENCY_KEY: event_id,
        TIMESTAMP: str(timestamp),
        SIGNATURE: sign(body, secret, timestamp),
        "User-Agent": "leadml-webhooks/1",
    }


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    tolerance_s: float = 300,
    now: float | None = None,
) -> bool:
    """True when `body` (the raw bytes received, before any JSON parsing) was signed with
    `secret` less than `tolerance_s` seconds from now. Header names in any case."""
    given = {name.lower(): value for name, value in headers.items()}
    try:
        timestamp = int(given.get(TIMESTAMP.lower(), ""))
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False  # too old (a replay) or from a clock far ahead
    expected = sign(body, secret, timestamp).encode()
    return hmac.compare_digest(
        expected, given.get(SIGNATURE.lower(), "").encode("utf-8", "replace")
    )


@dataclass(frozen=True)
class Backoff:
    """When to try again: a random wait in [0, min(cap_s, base_s * 2^attempt)] after the
    attempt-th failure (0-based), so the first retries come within seconds and no wait
    exceeds cap_s: a receiver back after a minute has everything within a minute more.
    Failures `give_up_after` the event was created make it `failed`."""

    base_s: float = 2.0
    cap_s: float = 60.0
    give_up_after: timedelta = timedelta(hours=48)

    def ceiling(self, attempt: int) -> float:
        return min(self.cap_s, self.base_s * 2 ** min(attempt, 40))

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, self.ceiling(attempt))


@dataclass
class Delivery:
    """What one pass did."""

    delivered: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0  # taken by another sender, or its receiver already failed in this pass
    errors: dict[str, str] = field(default_factory=dict)  # receiver (no credentials) -> last error


def safe_url(url: str) -> str:
    """A receiver's URL fit to print and log: no user:password, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a 3xx is an answer to fix, not to follow
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def post(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> str | None:
    """POST once; None when the receiver answered 2xx, else what went wrong (no secret in it).
    A user:password in the URL is sent as HTTP Basic authorization."""
    parts = urlsplit(url)
    sent = dict(headers)
    if parts.username is not None:
        login = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        sent["Authorization"] = "Basic " + base64.b64encode(login).decode()
        url = urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    request = urllib.request.Request(url, data=body, headers=sent, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout_s) as answer:
            status = answer.status
    except urllib.error.HTTPError as exc:
        status = exc.code
        exc.close()
    except (OSError, ValueError) as exc:  # refused, timed out, DNS, TLS, a malformed URL
        reason = getattr(exc, "reason", None) or exc
        return f"{type(exc).__name__}: {reason}".replace(url, safe_url(url))
    return None if 200 <= status < 300 else f"HTTP {status}"


class Sender:
    """Posts due outbox entries of `store`, signed with `secret`. Safe to run in several
    processes on one store; `stopping` ends a pass between two entries."""

    def __init__(
        self,
        store: ScoreStore,
        secret: str,
        backoff: Backoff | None = None,
        timeout_s: float = 5.0,
        lease_s: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        self.store, self._secret = store, secret
        self.backoff = backoff or Backoff()
        self.timeout_s, self.lease_s = timeout_s, lease_s
        self.rng = rng or random.Random()
        self.stopping = threading.Event()

    def __repr__(self) -> str:  # never the secret
        return f"Sender(timeout_s={self.timeout_s}, lease_s={self.lease_s}, {self.backoff})"

    def deliver_due(self, now: datetime | None = None, limit: int = 100) -> Delivery:
        """One pass over what is due at `now`, oldest first. A receiver that fails is not tried
        again in the same pass (one probe per pass while it is down); its other entries wait
        for the next pass."""
        now = now or datetime.now(UTC)
        done, down = Delivery(), set[str]()
        for entry in self.store.due(now, limit):
            if self.stopping.is_set():
                break
            if entry.url in down or not self.store.claim(entry.id, now, self.lease_s):
                done.skipped += 1
                continue
            error = self._send(entry)
            if error is None:
                self.store.delivered(entry.id, now)
                done.delivered += 1
                continue
            down.add(entry.url)
            done.errors[safe_url(entry.url)] = error
            give_up = now - entry.created_at >= self.backoff.give_up_after
            wait = self.backoff.delay(entry.attempts, self.rng)
            self.store.retry(entry.id, now + timedelta(seconds=wait), error, give_up)
            if give_up:
                done.failed += 1
                log.warning(
                    "webhook %s to %s failed for good after %d attempts (%s); "
                    "`leadml webhooks --replay` sends it again",
                    entry.event_id,
                    safe_url(entry.url),
                    entry.attempts + 1,
                    error,
                )
            else:
                done.retried += 1
                log.info(
                    "webhook %s to %s: %s; next try in %.1fs",
                    entry.event_id,
                    safe_url(entry.url),
                    error,
                    wait,
                )
        return done

    def _send(self, entry: OutboxEntry) -> str | None:
        body = entry.body.encode()
        headers = signed_headers(body, self._secret, entry.event_id, int(time.time()))
        return post(entry.url, body, headers, self.timeout_s)


@contextlib.asynccontextmanager
async def background(settings: StoreSettings, interval_s: float = 1.0) -> AsyncIterator[None]:
    """Deliver webhooks beside the service while the block runs, when webhook URLs are set and
    the store is on. For the FastAPI lifespan: `async with webhooks.background(s): yield`."""
    if not settings.store_url or not settings.webhook_urls or not settings.webhook_secret:
        yield
        return
    stopping = threading.Event()
    task = asyncio.create_task(_passes(settings, interval_s, stopping))
    try:
        yield
    finally:
        stopping.set()  # a pass in its thread ends after the POST under way
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _passes(settings: StoreSettings, interval_s: float, stopping: threading.Event) -> None:
    """A pass every `interval_s` until cancelled, each in a thread: the database and the POSTs
    never block the event loop. A store that is down (even at start) is logged and tried
    again; the outbox keeps everything meanwhile."""
    from leadml.store import ScoreStore

    sender: Sender | None = None
    try:
        while not stopping.is_set():
            try:
                if sender is None:
                    store = await asyncio.to_thread(ScoreStore, str(settings.store_url))
                    sender = Sender(store, str(settings.webhook_secret))
                    sender.stopping = stopping
                await asyncio.to_thread(sender.deliver_due)
            except Exception as exc:
                log.warning("webhook pass failed (%s); trying again", type(exc).__name__)
            await asyncio.sleep(interval_s)
    finally:
        if sender is not None:
            sender.store.engine.dispose()


def describe(entry: OutboxEntry) -> dict[str, str]:
    """One outbox row as `leadml webhooks` prints it: no body, no secret, no credentials."""
    try:
        event = json.loads(entry.body)
    except ValueError:
        event = {}
    when = {"delivered": entry.delivered_at, "failed": None}.get(entry.status, entry.next_at)
    return {
        "id": str(entry.id),
        "event": entry.event_id,
        "receiver": safe_url(entry.url),
        "lead": str(event.get("lead_id", "?")),
        "change": f"{event.get('old_band', '?')} -> {event.get('new_band', '?')}",
        "attempts": str(entry.attempts),
        "when": when.strftime("%Y-%m-%d %H:%M:%S") if when else "",
        "error": (entry.last_error or "")[:60],
    }
