"""Monitor: how the kept scores did against what really happened, and whether to act.

The readiness gate (`readiness`) is shared by `leadml monitor` (never judge too little
data) and `leadml retrain` (never retrain on too little).
"""

from __future__ import annotations

from dataclasses import dataclass

from leadml.config import MonitorConfig


@dataclass(frozen=True)
class Readiness:
    """Enough matured data or not, with the counts and the sentence that says so."""

    ready: bool
    leads: int
    conversions: int
    reason: str


def readiness(leads: int, conversions: int, config: MonitorConfig) -> Readiness:
    """Whether `leads` matured leads with `conversions` conversions are enough to judge a
    model or train one (`config.min_leads`, `config.min_conversions`)."""
    short = []
    if leads < config.min_leads:
        short.append(f"{leads:,} matured leads (need {config.min_leads:,})")
    if conversions < config.min_conversions:
        short.append(f"{conversions:,} conversions (need {config.min_conversions:,})")
    if short:
        reason = "not enough matured data: " + " and ".join(short)
    else:
        reason = f"enough matured data: {leads:,} leads, {conversions:,} conversions"
    return Readiness(not short, leads, conversions, reason)
