"""Monitor: how the kept scores did against what really happened, and whether to act.

`judge` takes the period's scores from the score store, the outcomes, and the sampled
leads' features, and returns every figure `leadml monitor` reports, as one JSON-safe dict:
ranking (AUC with a bootstrap interval) and calibration (observed vs predicted per band and
grid cell) against the model's own test-slice figures (its card, logged with it in MLflow),
band shares per week, input drift against the reference profile saved with the model
(`drift`), and a verdict, ok / warn / alert, with the reasons in words and the actions.
`monitor_report` draws it, `tracking.log_monitor` logs it, the service's /metrics exports it.

Chance is weighed everywhere, so an undrifted period raises no alarm: an AUC drop counts
beyond the tolerance and beyond both figures' noise, a band's rate beyond a Bonferroni
bound over all bands and cells judged. The readiness gate (`readiness`) is shared with
`leadml retrain`: never judge, nor retrain on, too little matured data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from leadml import drift
from leadml.config import MonitorConfig
from leadml.errors import ConfigError
from leadml.features import FeatureSpec
from leadml.profile import Profile

if TYPE_CHECKING:
    from leadml.model import LeadScorer


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


# ---- what happened to the scored leads -------------------------------------------------


@dataclass(frozen=True)
class Period:
    """The scores judged: as-of times in [since, until), each matured by `observed_until`
    (the outcomes are known up to then) plus the horizon."""

    since: pd.Timestamp
    until: pd.Timestamp
    observed_until: pd.Timestamp
    horizon_days: int

    @classmethod
    def default(
        cls,
        observed_until: pd.Timestamp,
        horizon_days: int,
        config: MonitorConfig,
        since: pd.Timestamp | None = None,
        until: pd.Timestamp | None = None,
    ) -> Period:
        """By default the last `config.window_days` whose scores have matured: a score made
        as of T is judged once T + horizon <= observed_until."""
        matured = observed_until - pd.Timedelta(days=horizon_days) + pd.Timedelta(seconds=1)
        until = matured if until is None else min(until, matured)
        since = until - pd.Timedelta(days=config.window_days) if since is None else since
        if since >= until:
            raise ConfigError(
                f"the period {since:%Y-%m-%d} to {until:%Y-%m-%d} is empty: scores need "
                f"{horizon_days} days after their as-of for the outcome to be known, and the "
                f"outcomes go up to {observed_until:%Y-%m-%d}. Pick an earlier --since."
            )
        return cls(since, until, observed_until, horizon_days)

    def as_dict(self) -> dict:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "observed_until": self.observed_until.isoformat(),
            "horizon_days": self.horizon_days,
        }


def naive_utc(values) -> pd.Series | pd.Timestamp:
    """Times as naive UTC: the store's are tz-aware, the CRM's naive (read as UTC)."""
    if isinstance(values, pd.Timestamp):
        return values.tz_convert(None) if values.tzinfo is not None else values
    values = pd.to_datetime(values)
    return values.dt.tz_convert(None) if values.dt.tz is not None else values


def label(scores: pd.DataFrame, outcomes: pd.DataFrame, horizon_days: int) -> pd.DataFrame:
    """Each lead once (its first score in the period: the first chance to act on it), with
    `outcome`: converted within the horizon after the score's as-of (1), or not (0).
    Leads the outcomes do not know are `no_outcome`; leads that had converted before they
    were scored are `converted_before`: neither is judged."""
    first = scores.sort_values(["as_of", "id"]).drop_duplicates("lead_id", keep="first")
    known = outcomes.set_index("lead_id")
    conv_at = naive_utc(known["converted_at"]).reindex(first["lead_id"]).to_numpy()
    found = first["lead_id"].isin(known.index).to_numpy()
    as_of = naive_utc(first["as_of"]).to_numpy()
    horizon = np.timedelta64(horizon_days, "D")
    before = found & (conv_at <= as_of)
    y = (conv_at > as_of) & (conv_at <= as_of + horizon)
    return first.assign(
        no_outcome=~found,
        converted_before=before,
        outcome=np.where(found & ~before, y.astype(float), np.nan),
    )


# ---- figures -----------------------------------------------------------------------------


def weighted_auc(y: np.ndarray, codes: np.ndarray, k: int, w: np.ndarray) -> float:
    """AUC with per-lead weights, from the rank codes of the scores (`np.unique` inverse):
    one pass, no sort, so a bootstrap round on 1M leads takes ~20 ms. Ties count half."""
    pos = np.bincount(codes, w * y, minlength=k)
    neg = np.bincount(codes, w * (1 - y), minlength=k)
    below = np.cumsum(neg) - neg
    den = pos.sum() * neg.sum()
    return float(np.sum(pos * (below + 0.5 * neg)) / den) if den > 0 else float("nan")


def auc_interval(
    y: np.ndarray, p: np.ndarray, rounds: int = 200, level: float = 0.9, seed: int = 0
) -> tuple[float, float, float, float]:
    """AUC, its `level` bootstrap interval and the bootstrap standard error. A Poisson
    bootstrap (each lead weighted by a Poisson(1) draw) is the ordinary bootstrap for large
    n, without materialising resamples."""
    _, codes = np.unique(p, return_inverse=True)
    k = int(codes.max()) + 1 if len(codes) else 0
    auc = weighted_auc(y, codes, k, np.ones(len(y)))
    rng = np.random.default_rng(seed)
    draws = np.array([weighted_auc(y, codes, k, rng.poisson(1.0, len(y))) for _ in range(rounds)])
    draws = draws[np.isfinite(draws)]
    if not len(draws):
        return auc, float("nan"), float("nan"), float("nan")
    tail = (1 - level) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return auc, float(low), float(high), float(draws.std(ddof=1))


def hanley_se(auc: float, n: int, rate: float) -> float:
    """Standard error of an AUC measured on `n` leads converting at `rate` (Hanley &
    McNeil 1982): how much the training's own test figure could be off by chance."""
    pos, neg = max(n * rate, 1.0), max(n * (1 - rate), 1.0)
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (pos - 1) * (q1 - auc * auc) + (neg - 1) * (q2 - auc * auc)) / (
        pos * neg
    )
    return float(np.sqrt(max(var, 0.0)))


def wilson(k: float, n: int, z: float = 1.645) -> tuple[float, float]:
    """Wilson score interval of a rate of k in n (90% by default)."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(mid - half), float(mid + half)


Z_AUC = 2.33  # one-sided 1%: a drop in AUC must be this many standard errors to count
MIN_CELL = 30  # leads a band or grid cell needs before its conversion rate is judged
DRIFT_SAMPLE = 50_000  # leads whose features are compared with the profile (PSI noise < 0.001)
BANDS_ORDER = ("SQL", "MQL", "Unqualified")


@dataclass
class Finding:
    """One thing the monitor noticed: how bad, in words, and what to do about it."""

    status: str  # warn / alert
    reason: str
    action: str


def discrimination(y: np.ndarray, p: np.ndarray, card: dict, config: MonitorConfig) -> dict:
    """AUC now, with its bootstrap interval, against the test slice's. A drop counts when it
    is beyond the tolerance and beyond chance: both figures are noisy (the expected one by
    Hanley and McNeil's error on the test slice's size), so the gap is judged on their joint
    standard error."""
    auc, low, high, se = auc_interval(y, p)
    m = card.get("metrics") or {}
    expected = m.get("roc_auc")
    out = {"auc": auc, "low": low, "high": high, "expected": expected, "status": "ok"}
    if expected is None or not np.isfinite(auc):
        return out | {"status": "ok" if expected is None else "not judged"}
    se_exp = hanley_se(expected, int(m.get("leads", 0)), float(m.get("conversion_rate", 0.5)))
    joint = float(np.hypot(se, se_exp))
    gap, tol = expected - auc, config.auc_tolerance
    if gap - tol > Z_AUC * joint:
        out["status"] = "alert"
    elif gap > tol and gap > Z_AUC * joint:
        out["status"] = "warn"
    return out


def _rate_rows(
    key: np.ndarray, y: np.ndarray, p: np.ndarray, names, expected: dict[str, float]
) -> list[dict]:
    rows = []
    for name in names:
        m = key == name
        n = int(m.sum())
        if n == 0:
            continue
        k = float(y[m].sum())
        low, high = wilson(k, n)
        rows.append(
            {
                "leads": n,
                "predicted": float(p[m].mean()),
                "observed": k / n,
                "low": low,
                "high": high,
                "expected": expected.get(name),
                "status": "ok",
                "_name": name,
            }
        )
    return rows


def _judge_rates(rows: list[dict], cap: str | None = None) -> None:
    """Mark each row whose observed rate is off its predicted one beyond chance and by a
    margin that matters (warn: 5 points or a quarter; alert: 10 points or a half).
    Bonferroni over the rows judged, so 19 bands and cells raise no more false alarms than
    one would."""
    from scipy.stats import norm

    judged = [r for r in rows if r["leads"] >= MIN_CELL]
    if not judged:
        return
    z = float(norm.ppf(1 - 0.01 / (2 * len(judged))))
    for r in judged:
        pred, gap = r["predicted"], abs(r["observed"] - r["predicted"])
        se = np.sqrt(max(pred * (1 - pred), 1e-6) / r["leads"])
        if gap < z * se:
            continue
        if gap >= max(0.10, 0.5 * pred) and cap is None:
            r["status"] = "alert"
        elif gap >= max(0.05, 0.25 * pred):
            r["status"] = "warn"


def calibration(frame: pd.DataFrame, card: dict) -> dict:
    """Observed vs predicted conversion per band and per grid cell, with the test slice's
    observed rate beside each (`expected`)."""
    y, p = frame["outcome"].to_numpy(float), frame["probability"].to_numpy(float)
    band_exp = {r["band"]: r["observed"] for r in card.get("band_backtest") or []}
    bands = _rate_rows(frame["band"].to_numpy(), y, p, BANDS_ORDER, band_exp)
    _judge_rates(bands)
    grid: list[dict] = []
    cells = frame["grid"].dropna().to_numpy() if "grid" in frame else np.array([])
    if len(cells):
        backtest = ((card.get("grades") or {}).get("backtest") or {}).get("grid") or []
        grid_exp = {f"{r['fit']}{r['engagement']}": r["conversion"] for r in backtest}
        key = frame["grid"].fillna("").to_numpy()
        grid = _rate_rows(key, y, p, sorted(set(cells)), grid_exp)
        _judge_rates(grid, cap="warn")
    return {
        "bands": [{"band": r.pop("_name")} | r for r in bands],
        "grid": [{"cell": r.pop("_name")} | r for r in grid],
    }


def score_drift(frame: pd.DataFrame, card: dict) -> dict:
    """Share of leads per band now vs on the test slice, and per week of the period."""
    expected = {r["band"]: r["share"] for r in card.get("band_backtest") or []}
    n = max(len(frame), 1)
    bands = []
    for band in BANDS_ORDER:
        share = float((frame["band"] == band).sum() / n)
        exp = expected.get(band)
        moved = exp is not None and abs(share - exp) >= 0.05 and abs(share - exp) >= 0.5 * exp
        bands.append(
            {"band": band, "share": share, "expected": exp, "status": "warn" if moved else "ok"}
        )
    week = naive_utc(frame["as_of"]).dt.to_period("W-SUN").dt.start_time
    weekly = []
    for start, group in frame.groupby(week.to_numpy(), sort=True):
        shares = group["band"].value_counts(normalize=True)
        weekly.append(
            {
                "week": f"{pd.Timestamp(start):%Y-%m-%d}",
                "leads": len(group),
                "shares": {b: float(shares.get(b, 0.0)) for b in BANDS_ORDER},
            }
        )
    return {"bands": bands, "weekly": weekly}


def input_drift(
    features: pd.DataFrame, profile: Profile | None, spec: FeatureSpec, config: MonitorConfig
) -> dict | None:
    """`drift.compare` of the sampled leads' features with the model's reference profile
    (None for a model saved before profiles)."""
    if profile is None:
        return None
    found = drift.compare(profile, features, spec, config)
    return {
        "sampled": len(features),
        "features": [f.as_dict() for f in found],
        "drifted": [f.feature for f in found if f.status != "ok"],
        "thresholds": {"psi_warn": config.psi_warn, "psi_alert": config.psi_alert},
    }


def _findings(result: dict, no_outcome_share: float) -> list[Finding]:
    found = []
    d = result["discrimination"]
    if d and d["status"] in ("warn", "alert"):
        found.append(
            Finding(
                d["status"],
                f"ranking weaker than at training: AUC {d['auc']:.2f} (90% interval "
                f"{d['low']:.2f}-{d['high']:.2f}) vs {d['expected']:.2f} on the test slice",
                "retrain (leadml retrain)",
            )
        )
    cal = result["calibration"] or {"bands": [], "grid": []}
    rates = [(f"{r['band']} band", r) for r in cal["bands"]]
    rates += [(f"grid cell {r['cell']}", r) for r in cal["grid"]]
    for name, r in rates:
        if r["status"] != "ok":
            found.append(
                Finding(
                    r["status"],
                    f"{name} converts {r['observed']:.0%} vs {r['predicted']:.0%} expected "
                    f"({r['leads']:,} leads)",
                    "retrain: the probabilities no longer match what happens",
                )
            )
    for r in result["score_drift"]["bands"]:
        if r["status"] != "ok":
            found.append(
                Finding(
                    "warn",
                    f"{r['band']} band holds {r['share']:.0%} of leads now vs "
                    f"{r['expected']:.0%} at training",
                    "review the MQL / SQL lines (bands: in the training config)",
                )
            )
    drifted = [f for f in (result["drift"] or {}).get("features", []) if f["status"] != "ok"]
    if drifted:
        labels = ", ".join(f["label"] for f in drifted[:5])
        more = f" and {len(drifted) - 5} more" if len(drifted) > 5 else ""
        action = f"check the data feed for {labels}{more}; if the change is real, retrain"
        for f in drifted:
            found.append(Finding(f["status"], f["reason"], action))
    if no_outcome_share >= 0.2:
        found.append(
            Finding(
                "warn",
                f"{no_outcome_share:.0%} of the scored leads are not in the outcomes",
                "check that the outcomes export has every scored lead (same lead ids)",
            )
        )
    return sorted(found, key=lambda f: f.status != "alert")


def verdict(result: dict, ready: Readiness, no_outcome_share: float) -> dict:
    """ok / warn / alert (exit code 0 / 1 / 2) with the reasons in words and the actions;
    `not_ready` (exit 0) when there is too little matured data to judge: never an alarm."""
    if not ready.ready:
        return {
            "verdict": "not_ready",
            "exit_code": 0,
            "reasons": [ready.reason],
            "actions": ["wait: judge again once more scored leads have matured (or widen --since)"],
        }
    found = _findings(result, no_outcome_share)
    worst = "alert" if any(f.status == "alert" for f in found) else "warn" if found else "ok"
    return {
        "verdict": worst,
        "exit_code": {"ok": 0, "warn": 1, "alert": 2}[worst],
        "reasons": [f.reason for f in found],
        "actions": list(dict.fromkeys(f.action for f in found)),
    }


def judge(
    scores: pd.DataFrame,
    outcomes: pd.DataFrame,
    fingerprints: Callable[[list[int]], dict[int, dict[str, float]]],
    scorer: LeadScorer,
    period: Period,
    config: MonitorConfig,
    seed: int = 0,
) -> dict:
    """Everything `leadml monitor` reports, as one JSON-safe dict (the report, the JSON
    file, the MLflow run and the service's gauges all read it)."""
    card = scorer.card
    labelled = label(scores, outcomes, period.horizon_days)
    judged = labelled[labelled["outcome"].notna()]
    y = judged["outcome"].to_numpy(float)
    ready = readiness(len(judged), int(y.sum()), config)
    rng = np.random.default_rng(seed)
    ids = judged["id"].to_numpy()
    sample = np.sort(rng.choice(ids, min(len(ids), DRIFT_SAMPLE), replace=False))
    kept = fingerprints([int(i) for i in sample])
    X = pd.DataFrame.from_records(
        [kept.get(int(i), {}) for i in sample], columns=scorer.spec.feature_names
    ).astype(np.float64)
    enough = len(judged) > 0 and 0 < y.sum() < len(y)
    p = judged["probability"].to_numpy(float)
    registry = card.get("registry") or {}
    no_outcome = float(labelled["no_outcome"].mean()) if len(labelled) else 0.0
    result: dict[str, Any] = {
        "created_at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
        "model": {
            "name": registry.get("name"),
            "version": registry.get("version"),
            "trained_at": card.get("trained_at"),
            "horizon_days": period.horizon_days,
        },
        "period": period.as_dict(),
        "readiness": asdict(ready),
        "counts": {
            "scores": len(scores),
            "leads": len(labelled),
            "matured": len(judged),
            "no_outcome": int(labelled["no_outcome"].sum()),
            "converted_before": int(labelled["converted_before"].sum()),
        },
        "discrimination": discrimination(y, p, card, config) if enough else None,
        "calibration": calibration(judged, card) if len(judged) else None,
        "score_drift": score_drift(judged, card),
        "drift": input_drift(X, scorer.profile, scorer.spec, config),
    }
    return verdict(result, ready, no_outcome) | result
