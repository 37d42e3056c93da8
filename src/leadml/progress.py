"""Progress on long work: a bar per step on a terminal, timings of each step for the model card."""

from __future__ import annotations

import time


class Stages:
    """A progress bar over the steps of a long job (`fit`, the ledger) that also records how
    long each step took."""

    def __init__(self, total: int, progress: bool):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, unit="step", disable=not progress, leave=False)
        self.seconds: dict[str, float] = {}
        self._name: str | None = None
        self._t0 = 0.0

    def next(self, name: str | None) -> None:
        now = time.perf_counter()
        if self._name is not None:
            self.seconds[self._name] = round(now - self._t0, 2)
            self.bar.update(1)
        self._name, self._t0 = name, now
        if name is not None:
            self.bar.set_description(name)

    def close(self) -> None:
        self.next(None)
        self.bar.close()
