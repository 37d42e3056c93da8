"""Marketers' point rules: read them, score leads with them, learn what the points should be.

A rules file (YAML) is what a marketing-automation tool holds: rules such as "visited the
pricing page: +10", "VP or C-level: +15", "unsubscribed: -20", optional caps per group of
rules, optional decay (points halve every N days after the activity), and the MQL and SQL
thresholds in points. See `data/rules/sample_rules.yaml`.

`learn_points` refits the same rules as a logistic scorecard on leads with known outcomes
and puts its weights on the marketer's scale: a learned score reaching the marketer's MQL
threshold means the same conversion chance as a manual score reaching it.
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from sklearn.linear_model import LogisticRegression

from leadml.engagement import KINDS, days_since_activity
from leadml.errors import RulesError
from leadml.features import FeatureSpec, build_features
from leadml.values import binary_word

OPS = ("==", "!=", "in", ">=", "<=", "between", "contains")
MIN_FIRES = 30  # a rule that fires on fewer labelled leads has no evidence either way
BOOTSTRAP = 30


@dataclass
class Rule:
    name: str
    field: str
    op: str
    value: Any
    points: float
    group: str | None = None
    decay_days: float | None = None
    line: int = 0

    def activity(self) -> str | None:
        """The activity kind behind an engagement field ("pricing_view_30d" -> "pricing_view")."""
        return next((k for k in KINDS if self.field.startswith(k + "_")), None)


@dataclass
class RuleSet:
    rules: list[Rule]
    mql: float
    sql: float
    caps: dict[str, float] = field(default_factory=dict)
    path: str = "rules"


class _LineLoader(yaml.SafeLoader):
    """YAML loader that remembers the line of every mapping (for error messages)."""


def _mapping_with_line(loader: _LineLoader, node: yaml.MappingNode) -> dict:
    out = loader.construct_mapping(node, deep=True)
    out["__line__"] = node.start_mark.line + 1
    out["__lines__"] = {k.value: k.start_mark.line + 1 for k, _ in node.value}
    return out


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_with_line)


def rule_fields(spec: FeatureSpec) -> list[str]:
    """What a rule can test for this model: lead fields, features, days since each activity."""
    raw = [f for f in spec.input_fields() if f not in ("lead_id", "created_at", spec.id_column)]
    extra = [f"days_since_{k}" for k in KINDS] if spec.kind == "crm" else []
    return list(dict.fromkeys(raw + list(spec.feature_names) + extra))


def load_rules(path: Path | str, fields: list[str] | None = None) -> RuleSet:
    """Read and check a rules file; errors name the rule and its line, and suggest a fix."""
    path = Path(path)
    if not path.is_file():
        raise RulesError(
            f"{path}: rules file not found. Pass a YAML file to --rules "
            "(see data/rules/sample_rules.yaml)"
        )
    return parse_rules(path.read_text(), path, fields)


def parse_rules(text: str, path: Path | str, fields: list[str] | None = None) -> RuleSet:
    """`load_rules` on text already read (a file uploaded to the workspace); `path` names it
    in the messages."""
    try:
        raw = yaml.load(text, Loader=_LineLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise RulesError(f"{path}{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("rules"), list) or not raw["rules"]:
        raise RulesError(f"{path}: expected `thresholds`, optional `groups` and a list of `rules`")
    thresholds = raw.get("thresholds") or {}
    mql, sql = thresholds.get("mql"), thresholds.get("sql")
    if not isinstance(mql, int | float) or not isinstance(sql, int | float) or sql < mql:
        raise RulesError(
            f"{path} line {thresholds.get('__line__', 1)}: thresholds need numbers mql and sql, "
            "with sql >= mql (e.g. mql: 40, sql: 70)"
        )
    caps = {
        str(k): float(v["cap"])
        for k, v in (raw.get("groups") or {}).items()
        if not k.startswith("__") and isinstance(v, dict) and isinstance(v.get("cap"), int | float)
    }
    rules = [_rule(r, i, path, fields, caps) for i, r in enumerate(raw["rules"])]
    names = [r.name for r in rules]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise RulesError(f"{path}: two rules are named {dup!r}; give each rule its own name")
    return RuleSet(rules, float(mql), float(sql), caps, str(path))


def field_hint(name: str, fields: list[str]) -> str:
    """What to write instead of a field the model does not know: the closest names."""
    close = difflib.get_close_matches(name, fields, n=3)
    return f"did you mean {', '.join(close)}?" if close else "`leadml rules fields` lists them"


def _rule(raw: Any, i: int, path: Path | str, fields: list[str] | None, caps: dict) -> Rule:
    line = raw.get("__line__", 0) if isinstance(raw, dict) else 0
    lines = raw.get("__lines__", {}) if isinstance(raw, dict) else {}
    name = str(raw.get("name") or f"rule {i + 1}") if isinstance(raw, dict) else f"rule {i + 1}"

    def fail(msg: str, key: str | None = None) -> RulesError:
        return RulesError(f"{path} line {lines.get(key, line)}, rule {name!r}: {msg}")

    if not isinstance(raw, dict):
        raise fail("expected a mapping with name, field, op, value and points")
    missing = [k for k in ("field", "op", "points") if k not in raw]
    if missing:
        raise fail(f"missing {', '.join(missing)}")
    fld, op, value, points = str(raw["field"]), str(raw["op"]), raw.get("value"), raw["points"]
    if fields is not None and fld not in fields:
        raise fail(f"unknown field {fld!r}; {field_hint(fld, fields)}", "field")
    if op not in OPS:
        raise fail(f"unknown operator {op!r}; use one of {', '.join(OPS)}", "op")
    if not isinstance(points, int | float) or isinstance(points, bool):
        raise fail("points must be a number (negative allowed)", "points")
    if op == "between" and not (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int | float) for v in value)
    ):
        raise fail("between needs two numbers, e.g. value: [1, 5]", "value")
    if op in (">=", "<=") and not isinstance(value, int | float):
        raise fail(f"{op} needs a number", "value")
    if op == "in" and not isinstance(value, list):
        raise fail("in needs a list, e.g. value: [Software, Finance]", "value")
    group = raw.get("group")
    if group is not None and str(group) not in caps:
        raise fail(f"group {group!r} has no cap under `groups:`", "group")
    rule = Rule(
        name, fld, op, value, float(points), group and str(group), raw.get("decay_days"), line
    )
    if rule.decay_days is not None and (rule.activity() is None or not rule.decay_days > 0):
        raise fail(
            "decay_days needs an activity field (e.g. pricing_view_30d) and a positive number"
        )
    return rule


# ---- scoring --------------------------------------------------------------------------------


def rule_table(
    leads: pd.DataFrame, events, spec: FeatureSpec, as_of=None, rejects=None
) -> tuple[pd.DataFrame, np.ndarray]:
    """Everything a rule can test, one row per lead (the lead's own fields as given; derived
    features, categories by name; days since each activity), and the model's feature matrix
    for the same leads, from the model's own feature function. Leads the feature function
    cannot use are added to `rejects` when it is given."""
    feats = build_features(leads, events, spec, as_of=as_of, source="rules")
    if rejects is not None:
        rejects.extend(feats.rejects)
    table = pd.DataFrame(index=feats.X.index)
    for f in rule_fields(spec):
        if f in leads:  # a lead field as the CRM holds it: rare values are not merged into "other"
            table[f] = leads.loc[table.index, f].astype(object).to_numpy()
        elif f in feats.X:
            values = feats.X[f].to_numpy()
            if f in spec.categories:
                vocab = np.array([*spec.categories[f], "other"], dtype=object)
                codes = np.nan_to_num(values).astype(int)
                table[f] = pd.Series(
                    np.where(np.isnan(values), None, vocab[codes]), index=table.index, dtype=object
                )
            else:
                table[f] = values
    if spec.kind == "crm":
        rows = leads.index.get_indexer(table.index)
        cut = np.asarray(as_of)[rows] if isinstance(as_of, np.ndarray | pd.Series | list) else as_of
        recency = days_since_activity(leads.iloc[rows], events, cut, spec)
        for j, k in enumerate(KINDS):
            table[f"days_since_{k}"] = recency[:, j]
    return table, feats.X.to_numpy(np.float64)


def fires(rule: Rule, table: pd.DataFrame) -> np.ndarray:
    """How much the rule fires per lead: 1, 0, or the decayed share (0.5 per decay_days)."""
    col = table[rule.field]
    numeric = pd.api.types.is_numeric_dtype(col.dtype)
    text = col.astype("string").str.strip().str.lower()
    v = rule.value
    if rule.op in (">=", "<=", "between"):
        x = pd.to_numeric(col, errors="coerce").to_numpy(float)
        lo, hi = (v, np.inf) if rule.op == ">=" else (-np.inf, v) if rule.op == "<=" else v
        hit = (x >= lo) & (x <= hi)
    elif rule.op == "contains":
        words = [str(w).lower() for w in (v if isinstance(v, list) else [v])]
        hit = np.zeros(len(col), bool)
        for w in words:
            hit |= text.str.contains(w, regex=False).fillna(False).to_numpy(bool)
    else:
        wanted = v if isinstance(v, list) else [v]
        if numeric:
            x = col.to_numpy(float)
            hit = np.isin(x, [n for n in map(_number, wanted) if n is not None])
        else:
            hit = text.isin([str(w).strip().lower() for w in wanted]).fillna(False).to_numpy(bool)
        if rule.op == "!=":
            hit = ~hit & col.notna().to_numpy()
    share = hit.astype(float)
    if rule.decay_days:
        days = table[f"days_since_{rule.activity()}"].to_numpy(float)
        share *= np.exp2(-days / rule.decay_days)
    return share


def _number(value: Any) -> float | None:
    """A rule's value as a number: yes/no and true/false count as 1/0 (binary fields)."""
    if isinstance(value, bool):
        return float(value)
    text = str(value).strip().lower()
    answer = binary_word(text)
    if answer is not None:
        return float(answer)
    try:
        return float(text)
    except ValueError:
        return None


def rule_matrix(ruleset: RuleSet, table: pd.DataFrame) -> np.ndarray:
    """n leads x rules: how much each rule fires."""
    return np.column_stack([fires(r, table) for r in ruleset.rules])


def score(ruleset: RuleSet, M: np.ndarray, points: np.ndarray | None = None) -> np.ndarray:
    """Points per lead: rules' points times how much they fire, each group within its cap."""
    pts = np.array([r.points for r in ruleset.rules]) if points is None else np.asarray(points)
    contrib = M * pts
    total = np.zeros(len(M))
    groups = [r.group for r in ruleset.rules]
    for g in dict.fromkeys(groups):
        cols = [j for j, x in enumerate(groups) if x == g]
        part = contrib[:, cols].sum(axis=1)
        if g is not None:
            cap = ruleset.caps[g]
            part = np.clip(part, -abs(cap), abs(cap))
        total += part
    return total


def band(points: np.ndarray, ruleset: RuleSet) -> np.ndarray:
    return np.where(
        points >= ruleset.sql, "SQL", np.where(points >= ruleset.mql, "MQL", "Unqualified")
    )


# ---- learning -------------------------------------------------------------------------------


@dataclass
class LearnedPoints:
    """The rules refitted as a scorecard, on the marketer's scale."""

    points: np.ndarray
    low: np.ndarray  # bootstrap 90 % interval
    high: np.ndarray
    intercept: float
    scale: float  # points per unit of log-odds
    fires: np.ndarray  # labelled leads each rule fired on
    model: LogisticRegression

    def probability(self, M: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(M)[:, 1]


def _anchor_scale(
    manual: np.ndarray, y: np.ndarray, mql: float, intercept: float, weight: np.ndarray | None
) -> float:
    """Points per log-odds unit such that learned points reaching `mql` mean what manual points
    reaching `mql` mean: the chance of converting at the marketer's MQL threshold."""
    fit = LogisticRegression(C=1e6, max_iter=1000).fit(manual.reshape(-1, 1), y, weight)
    logit_at_mql = float(fit.intercept_[0] + fit.coef_[0, 0] * mql)
    gap = logit_at_mql - intercept
    if gap <= 0.05:  # the manual MQL threshold is no better than no rule firing: keep a sane scale
        gap = float(np.log(4.0))  # MQL = 4x the odds of a lead with nothing
    return mql / gap


def learn_points(
    ruleset: RuleSet,
    M: np.ndarray,
    y: np.ndarray,
    seed: int = 7,
    bootstrap: int = BOOTSTRAP,
    weight: np.ndarray | None = None,
) -> LearnedPoints:
    """Logistic scorecard over the same rules, on the marketer's point scale, with intervals
    from `bootstrap` refits (fewer where a page must answer quickly: rougher intervals).
    `weight` per row: a lead given as two rows, converted with weight p and not with 1 - p,
    is learned from a conversion chance instead of an outcome (the workspace's model-only
    comparison)."""
    y = np.asarray(y, float)
    w = np.ones(len(y)) if weight is None else np.asarray(weight, float)
    model = LogisticRegression(C=1.0, max_iter=2000).fit(M, y, w)
    manual = score(ruleset, M)
    scale = _anchor_scale(manual, y, ruleset.mql, float(model.intercept_[0]), w)
    rng = np.random.default_rng(seed)
    boot = []
    refit = copy.deepcopy(model).set_params(warm_start=True)  # from the fit: a few steps each
    for _ in range(bootstrap):
        rows = rng.integers(0, len(y), len(y))
        if y[rows].min() == y[rows].max():
            continue
        boot.append(refit.fit(M[rows], y[rows], w[rows]).coef_[0].copy())
    points = model.coef_[0] * scale
    boot_pts = np.array(boot) * scale if boot else points[None, :]  # no refits: no interval
    return LearnedPoints(
        points=points,
        low=np.quantile(boot_pts, 0.05, axis=0),
        high=np.quantile(boot_pts, 0.95, axis=0),
        intercept=float(model.intercept_[0]),
        scale=scale,
        fires=np.round(((M > 0) * w[:, None]).sum(axis=0)).astype(int),
        model=model,
    )


def verdict(manual: float, learned: float, low: float, high: float, n_fires: int) -> str:
    """Weight in the rule's own direction: a penalty of -5 where -10 is learned is under-weighted."""
    if n_fires < MIN_FIRES:
        return "no evidence"
    if low <= manual <= high or abs(learned - manual) <= max(2.0, 0.2 * abs(manual)):
        return "about right"
    more = learned > manual if manual >= 0 else learned < manual
    return "under-weighted" if more else "over-weighted"


def suggested_yaml(ruleset: RuleSet, learned: LearnedPoints, verdicts: list[str]) -> str:
    """The rules file again, with the learned points, ready to paste back into the CRM."""
    lines = [
        "# Suggested by leadml: the same rules with points learned from outcomes.",
        f"# Anchored so that MQL at {ruleset.mql:g} points keeps its meaning.",
        "",
        "thresholds:",
        f"  mql: {ruleset.mql:g}",
        f"  sql: {ruleset.sql:g}",
    ]
    if ruleset.caps:
        lines += ["", "groups:"] + [f"  {g}: {{cap: {c:g}}}" for g, c in ruleset.caps.items()]
    lines += ["", "rules:"]
    for rule, pts, v in zip(ruleset.rules, learned.points, verdicts, strict=True):
        entry = {
            "name": rule.name,
            "field": rule.field,
            "op": rule.op,
            "value": rule.value,
            "points": int(round(float(pts))),
        }
        if rule.group:
            entry["group"] = rule.group
        if rule.decay_days:
            entry["decay_days"] = rule.decay_days
        lines.append(f"  # was {rule.points:g}: {v}")
        block = yaml.safe_dump([entry], sort_keys=False, allow_unicode=True).rstrip().splitlines()
        lines += ["  " + b for b in block]
    return "\n".join(lines) + "\n"
