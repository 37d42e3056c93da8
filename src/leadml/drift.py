"""Input drift: do the leads scored now look like the ones the model was trained on?

Each derived feature of the kept scores is binned as the model's reference profile binned it
at training time (`profile.FeatureProfile.counts`: fixed bins, never re-fitted on the new data,
so two reports compare like with like), with missing values as one more bin, and compared by
the population stability index:

    PSI = sum over bins of (now - then) x ln(now / then)

PSI < 0.1 is the usual "no real change", 0.1-0.25 "moderate", > 0.25 "major" (the thresholds
are `MonitorConfig.psi_warn` / `psi_alert`). A category unseen in training counts in its own
bin, so "40% of leads now from a source unseen in training" is a large PSI by itself, and
each finding is said in words from the bin that moved most.

Why our own 60 lines rather than Evidently: the reference has to be small, versioned inside
the model folder and binned exactly as the store rounds values; Evidently keeps the whole
reference frame and pulls in a web-report stack we do not otherwise need.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from leadml.config import MonitorConfig
from leadml.features import FeatureSpec
from leadml.profile import FeatureProfile, Profile


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's change since training, with the sentence that says it."""

    feature: str
    label: str
    kind: str
    psi: float
    missing_then: float
    missing_now: float
    new_share: float  # categories: share of leads with a value unseen in training
    status: str  # ok / warn / alert
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def psi(then: np.ndarray, now: np.ndarray, floor: float) -> float:
    """Population stability index of two share vectors (each summing to 1); shares below
    `floor` count as `floor`, so an empty bin is a large change, not an infinite one."""
    a, e = np.maximum(now, floor), np.maximum(then, floor)
    return float(np.sum((a - e) * np.log(a / e)))


def _bin_words(fp: FeatureProfile, i: int) -> str:
    """What the leads in bin `i` are, in words (the bin after the profile's: missing)."""
    if i == fp.bins():
        return "are missing"
    if fp.kind == "category":
        if i == len(fp.labels):
            return "have a value unseen in training"
        return f"are {fp.labels[i]!r}"
    if i == 0:
        return f"are below {fp.edges[0]:g}" if fp.edges else "have any value"
    if i == len(fp.edges):
        return f"are {fp.edges[-1]:g} or more"
    return f"are {fp.edges[i - 1]:g} to below {fp.edges[i]:g}"


def _reason(label: str, fp: FeatureProfile, then: np.ndarray, now: np.ndarray) -> str:
    """The bin that moved most, in words: "Company size: 45% of leads are now '1-10' (18% at
    training)"."""
    i = int(np.argmax(np.abs(now - then)))
    verb, what = _bin_words(fp, i).split(" ", 1)
    said = f"now {verb} {what}" if verb == "have" else f"{verb} now {what}"
    return f"{label}: {now[i]:.0%} of leads {said} ({then[i]:.0%} at training)"


def compare(
    profile: Profile, X: pd.DataFrame, spec: FeatureSpec, config: MonitorConfig
) -> list[FeatureDrift]:
    """Each profiled feature of `X` (the period's derived features, NaN where missing)
    against the profile, largest PSI first."""
    floor = max(1e-4, 0.5 / max(profile.rows, 1))
    out = []
    for name, fp in profile.features.items():
        if name not in X:
            continue
        counts, missing = fp.counts(X[name].to_numpy(np.float64))
        total = max(int(counts.sum()) + missing, 1)
        now = np.append(counts, missing) / total
        then = np.append(np.asarray(fp.shares) * (1 - fp.missing), fp.missing)
        value = psi(then, now, floor)
        status = (
            "alert" if value >= config.psi_alert else "warn" if value >= config.psi_warn else "ok"
        )
        label = spec.labels.get(name, name)
        out.append(
            FeatureDrift(
                name,
                label,
                fp.kind,
                round(value, 4),
                round(float(then[-1]), 4),
                round(float(now[-1]), 4),
                round(float(now[len(fp.labels)]), 4) if fp.kind == "category" else 0.0,
                status,
                _reason(label, fp, then, now) if status != "ok" else "",
            )
        )
    return sorted(out, key=lambda d: -d.psi)
