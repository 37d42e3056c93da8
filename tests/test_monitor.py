"""monitor: the readiness gate (and, as it grows, the verdicts)."""

from __future__ import annotations

from leadml.config import MonitorConfig
from leadml.monitor import readiness


def test_readiness_needs_both_leads_and_conversions():
    config = MonitorConfig(min_leads=1000, min_conversions=100)
    assert readiness(1000, 100, config).ready
    few = readiness(999, 150, config)
    assert not few.ready and "999 matured leads (need 1,000)" in few.reason
    rare = readiness(5000, 99, config)
    assert not rare.ready and "99 conversions (need 100)" in rare.reason
    assert "matured leads" not in rare.reason  # only what is short is named
