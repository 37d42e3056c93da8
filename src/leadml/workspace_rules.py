"""The Rules page's comparison: a marketer's point rules against what the served model learned.

`leadml rules compare --data` refits the rules on labelled leads. The service has no training
data, only the model, so here the model answers instead of the outcomes: a reference population
of leads is drawn from the model's training profile (`profile.json`: each feature's bins and
shares), the model's own conversion chance for each is the outcome, and the rules are refitted on
that with `rules.learn_points`, on the marketer's scale. The points are what the model finds a rule
worth, not a measurement on real leads: features of one activity are drawn together (a lead with
pricing views in the last 7 days has them in the last 30 too), activities independently of each
other. Rules on what the profile does not hold (a raw field such as the job title, days since an
activity, decay) are listed as needing `leadml rules compare --data`.

Results are cached per model fingerprint and rules text, so the page and its download cost one
fit. `leadml.rules` (and through it scikit-learn) is imported only when a rules file arrives.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from leadml.errors import RulesError

if TYPE_CHECKING:
    from leadml.model import LeadScorer
    from leadml.profile import Profile
    from leadml.rules import Rule, RuleSet

MAX_BYTES = 1_000_000  # a rules file is a few KB; anything near this is not one
REFERENCE_LEADS = 2000
SEED = 18
BOOTSTRAP = 12  # refits for the intervals: a page answers in well under a second
CACHED = 32
ENGAGED = 0.7  # how strongly one lead's activities move together in the reference leads
NEEDS_DATA = "needs data"


@dataclass(frozen=True)
class RuleRow:
    """One rule on the page: both point columns, the verdict and its sentence."""

    name: str
    condition: str
    manual: float
    learned: float | None  # None: the model alone cannot judge it
    verdict: str
    sentence: str
    fires: float  # share of the reference leads it fires on


@dataclass(frozen=True)
class Comparison:
    key: str  # names the suggested rules file for the download link
    rows: list[RuleRow]
    unknown: list[tuple[str, str, str]]  # (rule, field, hint)
    suggested: str | None
    mql: float
    sql: float
    leads: int


def rules_text(raw: bytes, name: str) -> str:
    """An uploaded rules file as text, or a RulesError saying what is wrong with it."""
    if len(raw) > MAX_BYTES:
        raise RulesError(
            f"{name}: {len(raw):,} bytes is more than the {MAX_BYTES:,} a rules file may have "
            "here (rules files are a few KB): upload the YAML rules file itself"
        )
    if not raw.strip():
        raise RulesError(f"{name}: the file is empty; upload a YAML rules file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RulesError(
            f"{name}: not a text file (not UTF-8); upload the YAML rules file "
            "`leadml rules compare --rules` reads"
        ) from None
    if "\x00" in text:
        raise RulesError(f"{name}: not a text file (binary content); upload a YAML rules file")
    return text


def compare(
    text: str, name: str, model_key: str, scorer: LeadScorer, cache: OrderedDict
) -> Comparison:
    """The comparison for these rules and this model, from the cache when it was made before."""
    key = hashlib.sha256(f"{model_key}\0{text}".encode()).hexdigest()[:20]
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    result = _compare(text, name, key, scorer)
    cache[key] = result
    while len(cache) > CACHED:
        cache.popitem(last=False)
    return result


def _compare(text: str, name: str, key: str, scorer: LeadScorer) -> Comparison:
    from threadpoolctl import threadpool_limits

    from leadml import rules

    fields = rules.rule_fields(scorer.spec)
    ruleset = rules.parse_rules(text, name)  # every field checked below, with a hint each
    unknown = [
        (r.name, r.field, rules.field_hint(r.field, fields))
        for r in ruleset.rules
        if r.field not in fields
    ]
    known = [r for r in ruleset.rules if r.field in fields]
    if scorer.profile is None or not known:
        return _unjudged(ruleset, known, unknown, key, "the model has no training profile")
    X = reference_leads(scorer.profile, scorer, REFERENCE_LEADS)
    judged = [r for r in known if r.field in X]
    if not judged:
        return _unjudged(ruleset, known, unknown, key, "a field it sees only through others")
    undecayed = [replace(r, decay_days=None) for r in judged]  # no dates in a profile
    part = rules.RuleSet(undecayed, ruleset.mql, ruleset.sql, ruleset.caps, ruleset.path)
    M = rules.rule_matrix(part, _named(X, scorer))
    chance = scorer.probability(X.to_numpy(np.float64))
    if np.ptp(chance) == 0:
        return _unjudged(ruleset, known, unknown, key, "the model gives every lead one answer")
    n = len(chance)  # each lead twice: converted with weight p, not converted with 1 - p
    both, y = np.vstack([M, M]), np.repeat([1.0, 0.0], n)
    weight = np.concatenate([chance, 1 - chance])
    with threadpool_limits(1, user_api="blas"):  # small fits: BLAS threads only wait (5x slower)
        learned = rules.learn_points(part, both, y, SEED, BOOTSTRAP, weight)
    at = {r.name: j for j, r in enumerate(judged)}
    rows = []
    for r in known:
        j = at.get(r.name)
        if j is None:
            rows.append(_row(r, None, NEEDS_DATA, 0.0))
            continue
        v = rules.verdict(
            r.points, learned.points[j], learned.low[j], learned.high[j], int((M[:, j] > 0).sum())
        )
        rows.append(_row(r, float(learned.points[j]), v, float((M[:, j] > 0).mean())))
    full = rules.RuleSet(known, ruleset.mql, ruleset.sql, ruleset.caps, ruleset.path)
    points = np.array([r.learned if r.learned is not None else r.manual for r in rows])
    suggested = rules.suggested_yaml(
        full, replace(learned, points=points), [r.verdict for r in rows]
    )
    return Comparison(
        key, _by_disagreement(rows), unknown, suggested, ruleset.mql, ruleset.sql, len(X)
    )


def _unjudged(ruleset: RuleSet, known: list[Rule], unknown: list, key: str, why: str) -> Comparison:
    """Nothing the model alone can judge: a model saved before profiles, or rules on raw
    fields only; every known rule is listed as needing `leadml rules compare --data`."""
    rows = [_row(r, None, NEEDS_DATA, 0.0, why) for r in known]
    return Comparison(key, rows, unknown, None, ruleset.mql, ruleset.sql, 0)


def reference_leads(profile: Profile, scorer: LeadScorer, n: int) -> pd.DataFrame:
    """`n` leads drawn from the training profile, each feature at its training shares.

    A profile holds each feature alone, but activity is not independent: a lead with pricing
    views in the last 7 days has them in the last 30 too, and an engaged lead does several
    things. So every feature of one reason group (an activity's counts and its decayed sum)
    is drawn from one random quantile, and the numeric groups' quantiles share a per-lead
    engagement level (correlation `ENGAGED`; "days since" groups run the other way). Fit
    fields (categories) are drawn independently. Missing values at each feature's rate."""
    from scipy.special import ndtr

    names = scorer.spec.feature_names
    rng = np.random.default_rng(SEED)
    level = rng.standard_normal(n)
    columns = {name: np.full(n, np.nan) for name in names}
    for cols in scorer.spec.reason_groups().values():
        feats = [profile.features.get(names[j]) for j in cols]
        z = rng.standard_normal(n)
        if all(f is not None and f.kind == "numeric" for f in feats):
            sign = -1.0 if names[cols[0]].startswith("days_since_last") else 1.0
            z = sign * ENGAGED * level + np.sqrt(1 - ENGAGED**2) * z
        u = ndtr(z)
        for j, f in zip(cols, feats, strict=True):
            if f is None:
                continue
            values = _draw(f.kind, f.edges, np.asarray(f.shares, np.float64), u)
            values[rng.random(n) < f.missing] = np.nan
            columns[names[j]] = values
    return pd.DataFrame(columns, columns=names)


def _draw(kind: str, edges: list[float], shares: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Values at quantile `u` of a profiled feature: its bin, then the place within the bin
    (whole numbers when the edges are: counts stay counts)."""
    cum = np.cumsum(shares) / max(float(shares.sum()), 1e-12)
    b = np.minimum(np.searchsorted(cum, u, "right"), len(shares) - 1)
    if kind == "category":
        return b.astype(np.float64)  # the code; the last bin is "unseen in training"
    if not edges:
        return np.zeros(len(u))
    e = np.asarray(edges, np.float64)
    if len(e) == 2 and e[1] - e[0] < 1e-9:  # a constant at training: below, at, one step above
        e = np.array([e[0], e[0] + 1.0])
    gap = float(np.diff(e).min()) if len(e) > 1 else 1.0
    below = max(e[0] - gap, 0.0) if e[0] > 0 else e[0] - gap  # bin 0: values under e[0]
    low = np.concatenate([[below], e])
    high = np.concatenate([[below], e[1:], [e[-1] + gap]])
    start = np.concatenate([[0.0], cum[:-1]])
    within = (u - start[b]) / np.maximum(cum[b] - start[b], 1e-12)
    within = np.clip(within, 0, 1 - 1e-9)
    value = low[b] + within * (high[b] - low[b])
    top = b == len(e)  # above the last edge: an exponential tail, a step on average
    value[top] = e[-1] - gap * np.log1p(-within[top])
    return np.floor(value) if np.all(e == np.round(e)) else value


def _named(X: pd.DataFrame, scorer: LeadScorer) -> pd.DataFrame:
    """The reference leads as rules see them: categories by name, numbers as they are."""
    spec = scorer.spec
    table = X.copy()
    for f, labels in spec.categories.items():
        if f in table:
            vocab = np.array([*labels, "other"], dtype=object)
            codes = np.nan_to_num(table[f].to_numpy()).astype(int)
            table[f] = np.where(table[f].isna(), None, vocab[np.clip(codes, 0, len(labels))])
    return table


def _row(
    rule: Rule,
    learned: float | None,
    verdict: str,
    fires: float,
    why: str = "a field it sees only through others",
) -> RuleRow:
    value = ", ".join(map(str, rule.value)) if isinstance(rule.value, list) else rule.value
    said = sentence(rule.name, rule.points, learned, verdict, why)
    if learned is not None and rule.decay_days:
        said += f" (Judged without its {rule.decay_days:g}-day decay: a profile has no dates.)"
    return RuleRow(
        rule.name, f"{rule.field} {rule.op} {value}", rule.points, learned, verdict, said, fires
    )


def sentence(name: str, manual: float, learned: float | None, verdict: str, why: str = "") -> str:
    """The verdict as a marketer says it."""
    yours = f"You give {manual:g} points for “{name}”"
    if learned is None:
        return f"{yours}; the model alone cannot judge it ({why}): run `leadml rules compare --data` to measure it on your leads."
    theirs = f"the model finds it worth {learned:.0f}"
    if verdict == "no evidence":
        return f"{yours}; {theirs}, but it fires too rarely to tell."
    if verdict == "about right":
        return f"{yours}; {theirs}: about right."
    under = verdict == "under-weighted"
    if manual < 0:  # a penalty: "underrate" would read backwards
        return f"{yours}; {theirs}: your penalty is too {'mild' if under else 'harsh'}."
    return f"{yours}; {theirs}: you {'underrate' if under else 'overrate'} it."


def _by_disagreement(rows: list[RuleRow]) -> list[RuleRow]:
    return sorted(
        rows, key=lambda r: -abs(r.manual - r.learned) if r.learned is not None else float("inf")
    )


def sample_rules() -> str:
    """What the editor starts with: the sample rules file of a source checkout, if any."""
    path = Path(__file__).resolve().parents[2] / "data" / "rules" / "sample_rules.yaml"
    return path.read_text() if path.is_file() else STARTER


STARTER = """thresholds:
  mql: 40
  sql: 70

rules:
  - name: Visited the pricing page
    field: pricing_view_30d
    op: ">="
    value: 1
    points: 10
"""
