"""Progress: a bar on a terminal, one plain line per step in logs, nothing with --quiet."""

from __future__ import annotations

import pytest

from leadml import progress


def run_three_steps(enabled: bool) -> progress.Stages:
    steps = progress.Stages(3, enabled)
    for name in ("reading data", "building features", "boosting"):
        steps.next(name)
    steps.close()
    return steps


def test_in_logs_each_step_is_one_plain_line(monkeypatch, capsys):
    monkeypatch.setattr(progress, "redraws", lambda: False)
    steps = run_three_steps(True)
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "leadml: reading data (1/3)",
        "leadml: building features (2/3)",
        "leadml: boosting (3/3)",
    ]
    assert "\r" not in err
    assert list(steps.seconds) == ["reading data", "building features", "boosting"]


def test_quiet_prints_nothing_and_still_times_the_steps(monkeypatch, capsys):
    for terminal in (True, False):
        monkeypatch.setattr(progress, "redraws", lambda terminal=terminal: terminal)
        steps = run_three_steps(False)
        assert capsys.readouterr().err == ""
        assert set(steps.seconds) == {"reading data", "building features", "boosting"}
        assert all(s >= 0 for s in steps.seconds.values())


def test_on_a_terminal_a_tqdm_bar_and_no_step_lines(monkeypatch, capsys):
    from tqdm.auto import tqdm

    monkeypatch.setattr(progress, "redraws", lambda: True)
    steps = progress.Stages(2, True)
    assert isinstance(steps.bar, tqdm)
    steps.next("reading data")
    steps.next("boosting")
    steps.close()
    assert "leadml: reading data" not in capsys.readouterr().err


@pytest.mark.parametrize(("terminal", "enabled"), [(False, True), (True, False), (False, False)])
def test_fine_bars_are_silent_off_a_terminal_or_when_quiet(monkeypatch, capsys, terminal, enabled):
    monkeypatch.setattr(progress, "redraws", lambda: terminal)
    bar = progress.bar(100, "boosting rounds", "round", enabled)
    for _ in range(100):
        bar.update(1)
    bar.set_description("x")
    bar.close()
    assert capsys.readouterr().err == ""


def test_a_terminal_is_found_from_stderr(monkeypatch):
    class Tty:
        def __init__(self, answer: bool):
            self.answer = answer

        def isatty(self) -> bool:
            return self.answer

    monkeypatch.delitem(__import__("sys").modules, "ipykernel", raising=False)
    monkeypatch.setattr("sys.stderr", Tty(True))
    assert progress.redraws()
    monkeypatch.setattr("sys.stderr", Tty(False))
    assert not progress.redraws()
