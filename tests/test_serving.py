"""The service's parts on their own: the batcher (with a fake scoring function), the
metrics, and the model holder (with a fake model source)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from leadml.batcher import Batcher
from leadml.config import ServeSettings
from leadml.errors import ModelError
from leadml.metrics import ServiceMetrics
from leadml.serving import ModelHolder


def test_concurrent_requests_are_scored_together_each_with_its_own_answer():
    calls: list[tuple[str, list[int]]] = []

    def score_many(key: str, items: list[int]) -> list[str]:
        calls.append((key, items))
        return [f"{key}:{i * 10}" for i in items]

    async def main() -> list[str]:
        batcher = Batcher(score_many)
        try:
            return await asyncio.gather(*(batcher.score("m", i) for i in range(20)))
        finally:
            await batcher.close()

    assert asyncio.run(main()) == [f"m:{i * 10}" for i in range(20)]
    assert len(calls) < 20 and sorted(i for _, items in calls for i in items) == list(range(20))


def test_items_are_scored_with_the_key_they_came_with():
    seen: list[tuple[str, list[int]]] = []

    def score_many(key: str, items: list[int]) -> list[str]:
        seen.append((key, list(items)))
        return [key] * len(items)

    async def main() -> list[str]:
        batcher = Batcher(score_many)
        keys = ["old", "new"] * 5  # a reload in the middle of a pass
        try:
            return await asyncio.gather(*(batcher.score(k, i) for i, k in enumerate(keys)))
        finally:
            await batcher.close()

    assert asyncio.run(main()) == ["old", "new"] * 5
    assert all(len({i % 2 for i in items}) == 1 for _, items in seen)


def test_a_failing_pass_fails_each_of_its_requests_and_the_batcher_goes_on():
    def score_many(key: str, items: list[int]) -> list[int]:
        if key == "bad":
            raise ValueError("cannot score")
        return items

    async def main() -> tuple[list, int]:
        batcher = Batcher(score_many)
        try:
            failed = await asyncio.gather(
                *(batcher.score("bad", i) for i in range(3)), return_exceptions=True
            )
            return failed, await batcher.score("good", 7)
        finally:
            await batcher.close()

    failed, good = asyncio.run(main())
    assert [type(e) for e in failed] == [ValueError] * 3 and good == 7


def _exposition(metrics: ServiceMetrics) -> str:
    return metrics.exposition()[0].decode()


def test_metrics_count_routes_bands_and_rejects():
    metrics = ServiceMetrics()
    metrics.request("/predict", 200, 0.004)
    metrics.request("/some/probe/path", 404, 0.001)  # not a route: one label for all of them
    metrics.scored(
        {
            "predictions": [{"band": "SQL"}, {"band": "MQL"}, {"band": "SQL"}],
            "rejected": [{"lead": 3}],
        }
    )
    text = _exposition(metrics)
    assert 'leadml_requests_total{route="/predict",status="200"} 1.0' in text
    assert 'leadml_requests_total{route="other",status="404"} 1.0' in text
    assert "/some/probe/path" not in text
    assert 'leadml_leads_scored_total{band="SQL"} 2.0' in text
    assert "leadml_leads_rejected_total 1.0" in text


def test_metrics_follow_the_model_being_served():
    metrics = ServiceMetrics()
    v1, v2 = (
        SimpleNamespace(name="leadml", version="1"),
        SimpleNamespace(name="leadml", version="2"),
    )
    metrics.model_loaded(v1, None)
    metrics.model_loaded(v2, v1)
    text = _exposition(metrics)
    assert 'leadml_model_info{model="leadml",version="1"} 0.0' in text
    assert 'leadml_model_info{model="leadml",version="2"} 1.0' in text
    assert "leadml_model_reloads_total 1.0" in text


class FakeSource:
    """A model source whose model moves when `stamp` changes, and can fail to load."""

    uri = "fake"

    def __init__(self) -> None:
        self.stamp, self.broken, self.loads = "1", False, 0

    def fingerprint(self) -> str:
        return self.stamp

    def load(self, fingerprint: str):
        if self.broken:
            raise OSError("disk gone")
        self.loads += 1
        return SimpleNamespace(name="m", version=fingerprint, uri="fake", fingerprint=fingerprint)

    def lines_stamp(self) -> str:  # no band lines saved from the workspace
        return "none"

    def with_lines(self, model, stamp: str):
        model.lines_stamp = stamp
        return model


def test_the_holder_swaps_only_a_model_that_moved_and_loaded():
    source, swaps = FakeSource(), []
    holder = ModelHolder(source, ServeSettings(), swapped=lambda new, old: swaps.append((new, old)))  # type: ignore[arg-type]
    with pytest.raises(ModelError) as caught:
        holder.ready()
    assert caught.value.status == 503 and "still loading" in str(caught.value)

    first = asyncio.run(holder.load())
    assert holder.ready() is first and swaps == [(first, None)]
    assert asyncio.run(holder.load()) is None and source.loads == 1  # not moved: not reloaded

    source.stamp, source.broken = "2", True
    assert asyncio.run(holder.load()) is None
    assert holder.ready() is first and "OSError: disk gone" in holder.not_ready()

    source.broken = False
    second = asyncio.run(holder.load())
    assert holder.ready() is second and second.version == "2" and swaps[-1] == (second, first)
    assert holder.last_error is None


def test_the_reload_token_tells_sibling_workers(tmp_path):
    token = tmp_path / "reload"
    a = ModelHolder(FakeSource(), ServeSettings(reload_token=str(token)))  # type: ignore[arg-type]
    b = ModelHolder(FakeSource(), ServeSettings(reload_token=str(token)))  # type: ignore[arg-type]
    a.announce()
    assert a._token_stamp() == a.token_seen != b.token_seen
