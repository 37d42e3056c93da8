"""The real service (`leadml serve`, uvicorn, 2 workers) under concurrent load while the
champion moves: every request in flight succeeds and the new model takes over."""

from __future__ import annotations

import threading
import time

import httpx2
import pytest

from leadml import tracking
from leadml.config import Settings, TrainConfig
from leadml.train import train
from tests.conftest import leadml_serve

pytestmark = pytest.mark.slow


@pytest.fixture
def server(home, crm_dir):
    """Champion v1 trained into an isolated home, served by `leadml serve` polling every 0.5 s."""
    settings = Settings.from_env()
    cfg = TrainConfig.model_validate({"model": {"baseline": False}})
    assert train(crm_dir, cfg, settings).version == "1"
    with leadml_serve(home, "--workers", "2", "--reload-seconds", "0.5") as served:
        yield served.url, settings, cfg
    assert "Traceback" not in served.log, served.log


def test_hot_reload_under_concurrent_load(server, crm_dir, crm_small):
    url, settings, cfg = server
    lead = {
        "lead_id": "L1",
        "job_title": "VP Sales",
        "company_size": "201-1000",
        "events": [{"occurred_at": "2026-06-01T10:00:00", "event_type": "demo_request"}],
        "as_of": "2026-06-30T00:00:00",
    }
    seen: list[tuple[float, int, str | None]] = []
    stop = threading.Event()

    def hammer(i: int) -> None:
        with httpx2.Client(base_url=url, timeout=30) as c:
            while not stop.is_set():
                started = time.monotonic()
                r = c.post("/predict", json={**lead, "lead_id": f"L{i}"})
                version = r.json()["model_version"] if r.status_code == 200 else None
                seen.append((started, r.status_code, version))

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        other = TrainConfig.model_validate({"model": {"baseline": False}, "split": {"seed": 99}})
        v2 = train(crm_dir, other, settings).version
        tracking.set_alias(settings, tracking.CHAMPION, v2)  # the champion moves
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not [s for s in seen[-40:] if s[2] == v2][39:]:
            time.sleep(0.2)
        r = httpx2.post(f"{url}/admin/reload", timeout=30)  # a forced reload, also under load
        assert r.status_code == 200 and r.json()["model_version"] == v2
        time.sleep(1.5)  # the other worker follows within a second
        switched = time.monotonic()
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join()
    statuses = {s for _, s, _ in seen}
    assert statuses == {200}, statuses
    seen.sort()
    versions = [v for _, _, v in seen]
    assert versions[0] == "1" and set(versions) == {"1", v2} and len(seen) > 200, (
        len(seen),
        versions[:3],
        set(versions),
    )
    late = [v for t, _, v in seen if t > switched]
    assert late and set(late) == {v2}, (len(late), set(late))  # both workers moved on
    metrics = httpx2.get(f"{url}/metrics").text
    reloads = sum(
        float(x.rsplit(" ", 1)[1])
        for x in metrics.splitlines()
        if x.startswith("leadml_model_reloads_total")
    )
    assert reloads >= 2  # every worker swapped at least once, counted across workers
