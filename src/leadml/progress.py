"""Progress on long work: bars on a terminal, one plain line per step in logs.

On a terminal (or in a notebook) a tqdm bar redraws itself in place. Anywhere else, a log file,
a CI job, a pipe, those redraws become carriage-return noise, so each step prints one line
instead (`leadml: building features (3/6)` on stderr) and finer bars (boosting rounds) print
nothing. `enabled=False` (the CLI's --quiet) silences both. Stages also times each step for
the model card, whether anything is shown or not.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol


class Bar(Protocol):
    """What leadml asks of a progress bar (tqdm's names)."""

    def update(self, n: int = 1) -> Any: ...

    def set_description(self, desc: str | None = None) -> Any: ...

    def close(self) -> Any: ...


class _Silent:
    """A bar that shows nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def set_description(self, desc: str | None = None) -> None:
        pass

    def close(self) -> None:
        pass


def redraws() -> bool:
    """True where a bar can redraw itself in place: stderr is a terminal, or a notebook runs us."""
    return sys.stderr.isatty() or "ipykernel" in sys.modules


def bar(total: int, desc: str, unit: str, enabled: bool) -> Bar:
    """A tqdm bar where it can redraw itself; elsewhere (or when not enabled) a silent one.

    For fine-grained progress (boosting rounds) whose steps are too many to log one by one.
    """
    if not (enabled and redraws()):
        return _Silent()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=False)


class Stages:
    """The named steps of a long job (training, the ledger, synth): a bar on a terminal, one
    line per step in logs, and how long each step took."""

    def __init__(self, total: int, progress: bool):
        self.total = total
        self.progress = progress
        self.bar = bar(total, "", "step", progress)
        self.lines = progress and not redraws()
        self.seconds: dict[str, float] = {}
        self._name: str | None = None
        self._t0 = 0.0
        self._started = 0

    def next(self, name: str | None) -> None:
        """Finish the current step (if any) and start `name` (None: start nothing)."""
        now = time.perf_counter()
        if self._name is not None:
            self.seconds[self._name] = round(now - self._t0, 2)
            self.bar.update(1)
        self._name, self._t0 = name, now
        if name is not None:
            self._started += 1
            self.bar.set_description(name)
            if self.lines:
                print(f"leadml: {name} ({self._started}/{self.total})", file=sys.stderr, flush=True)

    def close(self) -> None:
        self.next(None)
        self.bar.close()
