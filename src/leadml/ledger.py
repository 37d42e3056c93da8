"""The points ledger: a marketer's rules against the learned model, rule by rule.

`compare` labels the data the way training does (same cut-offs, same split), learns the
rules' points on the older leads and judges everything on the model's test leads: per rule
its coverage, conversion when it fires and when it does not, the marketer's points, the
learned points (with a 90 % interval), the model's own average contribution in points, and
a verdict; overall the AUC and log loss of the manual score, the refitted rules and the
model, both band tables, and the leads on which manual points and the model disagree most.
`ledger_report` turns it into a terminal table, a CSV, a suggested rules file and an HTML page
with charts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score

from leadml import grades, labels, rules
from leadml.bands import to_band
from leadml.config import TrainConfig
from leadml.engagement import KIND_LABELS, KINDS
from leadml.fit_features import CRM_FIT
from leadml.local_engine import load_for_training
from leadml.model import LeadScorer
from leadml.progress import Stages
from leadml.split import split

DISAGREEMENTS = 10


@dataclass
class Ledger:
    per_rule: pd.DataFrame
    overall: pd.DataFrame
    bands: pd.DataFrame
    disagreements: pd.DataFrame
    suggested: str
    gains: pd.DataFrame  # share of leads contacted -> share of conversions, per ranking
    ruleset: rules.RuleSet
    test_leads: int
    fit_leads: int
    tables: dict = field(default_factory=dict)  # rows read / used / rejected per input table
    notes: list[str] = field(default_factory=list)  # how the input files were read
    halves: pd.DataFrame = field(default_factory=pd.DataFrame)  # fit vs engagement points


def _linked_groups(rule: rules.Rule, scorer: LeadScorer) -> list[int]:
    """The model's reason groups that stand for the field a rule tests."""
    spec = scorer.spec
    groups = list(spec.reason_groups().items())
    if spec.kind == "crm" and rule.field in {src for src, _ in CRM_FIT.values()}:
        features = [name for name, (src, _) in CRM_FIT.items() if src == rule.field]
    elif rule.field.startswith("days_since_") and rule.field[11:] in KINDS:
        label = KIND_LABELS[rule.field[11:]]
        return [i for i, (g, _) in enumerate(groups) if g == label]
    else:
        features = [
            f for f in spec.feature_names if f == rule.field or f.startswith(rule.field + " (")
        ]
    idx = {spec.feature_names.index(f) for f in features}
    return [i for i, (_, cols) in enumerate(groups) if idx & set(cols)]


def _config_for(scorer: LeadScorer, config: TrainConfig | None) -> TrainConfig:
    if config is not None:
        return config
    card = scorer.card
    flat = {"target": card.get("target"), "missing_values": card.get("missing_values") or []}
    if scorer.spec.kind == "flat" and scorer.spec.id_column != "row_id":
        flat["id_column"] = scorer.spec.id_column
    label = {"horizon_days": card.get("horizon_days") or 30}
    return TrainConfig.model_validate({"flat": flat, "label": label})


def compare(
    ruleset: rules.RuleSet,
    scorer: LeadScorer,
    data_path: Path | str,
    config: TrainConfig | None = None,
    progress: bool = False,
) -> Ledger:
    """Rules against the model on the same leads (see the module docstring)."""
    config = _config_for(scorer, config)
    steps = Stages(5, progress)
    steps.next("reading data")
    data = load_for_training(Path(data_path), config)
    steps.next("labelling cut-offs")
    lab = labels.label(data, config)
    parts = split(lab, config)
    steps.next("features and rules")
    table, X = rules.rule_table(
        lab.leads, lab.events, scorer.spec, as_of=lab.as_of, rejects=data.rejects
    )
    pos = lab.leads.index.get_indexer(table.index)
    y = lab.y[pos]
    M = rules.rule_matrix(ruleset, table)
    in_test = np.isin(pos, parts["test"])
    fit, test = ~in_test, in_test
    steps.next("learning points")
    learned = rules.learn_points(ruleset, M[fit], y[fit])
    steps.next("judging on the test leads")

    manual_fit, manual = rules.score(ruleset, M[fit]), rules.score(ruleset, M[test])
    to_p = LogisticRegression(C=1e6, max_iter=1000).fit(manual_fit.reshape(-1, 1), y[fit])
    p_manual = to_p.predict_proba(manual.reshape(-1, 1))[:, 1]
    p_learned = learned.probability(M[test])
    Xt = X[test]
    p_model = scorer.probability(Xt)
    yt = y[test]
    overall = pd.DataFrame(
        [
            {
                "scorer": "manual points",
                "roc_auc": roc_auc_score(yt, manual),
                "log_loss": log_loss(yt, p_manual, labels=[0, 1]),
            },
            {
                "scorer": "refitted rules",
                "roc_auc": roc_auc_score(yt, p_learned),
                "log_loss": log_loss(yt, p_learned, labels=[0, 1]),
            },
            {
                "scorer": "leadml model",
                "roc_auc": roc_auc_score(yt, p_model),
                "log_loss": log_loss(yt, p_model, labels=[0, 1]),
            },
        ]
    )

    model_pts, _, _ = scorer.points(Xt)
    Mt = M[test]
    rows = []
    for j, rule in enumerate(ruleset.rules):
        hit = Mt[:, j] > 0
        groups = _linked_groups(rule, scorer)
        rows.append(
            {
                "rule": rule.name,
                "field": rule.field,
                "op": rule.op,
                "value": rule.value,
                "coverage": hit.mean(),
                "fires": int(hit.sum()),
                "conversion_when_fires": yt[hit].mean() if hit.any() else np.nan,
                "conversion_otherwise": yt[~hit].mean() if (~hit).any() else np.nan,
                "manual_points": rule.points,
                "learned_points": learned.points[j],
                "learned_low": learned.low[j],
                "learned_high": learned.high[j],
                "model_points": model_pts[hit][:, groups].sum(axis=1).mean()
                if hit.any() and groups
                else np.nan,
                "verdict": rules.verdict(
                    rule.points,
                    learned.points[j],
                    learned.low[j],
                    learned.high[j],
                    int(learned.fires[j]),
                ),
            }
        )
    per_rule = pd.DataFrame(rows)
    half_of = _halves_of_rules(ruleset, scorer, config)
    per_rule.insert(1, "half", half_of)
    halves = _halves_table(ruleset, half_of, Mt, learned, model_pts, scorer, config, Xt, yt)

    manual_band = rules.band(manual, ruleset)
    model_band = to_band(p_model, scorer.thresholds)
    bands = pd.concat(
        [_band_table(manual_band, yt, "manual points"), _band_table(model_band, yt, "leadml model")]
    )
    ids = (
        lab.leads[scorer.spec.id_column].to_numpy()
        if scorer.spec.id_column in lab.leads
        else np.arange(1, len(lab.leads) + 1)
    )[pos][test]
    disagreements = _disagreements(
        ids, manual, manual_band, p_manual, p_model, model_band, yt, Xt, scorer
    )
    gains = pd.DataFrame(
        {
            "share_of_leads": np.linspace(0, 1, 101),
            "manual points": _gains(manual, yt),
            "refitted rules": _gains(p_learned, yt),
            "leadml model": _gains(p_model, yt),
        }
    )
    suggested = rules.suggested_yaml(ruleset, learned, list(per_rule["verdict"]))
    steps.close()
    return Ledger(
        per_rule,
        overall,
        bands,
        disagreements,
        suggested,
        gains,
        ruleset,
        int(test.sum()),
        int(fit.sum()),
        data.counts(),
        data.notes,
        halves,
    )


def _feature_half(scorer: LeadScorer, config: TrainConfig) -> dict[str, str]:
    """ "fit" or "engagement" for every feature (product usage is engagement here)."""
    parts = grades.parts(scorer.spec, config.grades)
    return {f: "fit" for f in parts["fit"]} | {
        f: "engagement" for f in parts["engagement"] + parts["usage"]
    }


def _halves_of_rules(ruleset: rules.RuleSet, scorer: LeadScorer, config: TrainConfig) -> list[str]:
    """Each rule's half: engagement when it tests an activity, else that of the features it
    stands for; a rule the model has no feature for counts as fit."""
    half = _feature_half(scorer, config)
    groups = list(scorer.spec.reason_groups().values())
    out = []
    for rule in ruleset.rules:
        if rule.activity() or rule.field.startswith("days_since_"):
            out.append("engagement")
            continue
        cols = [j for g in _linked_groups(rule, scorer) for j in groups[g]]
        names = {half[scorer.spec.feature_names[j]] for j in cols}
        out.append("engagement" if names == {"engagement"} else "fit")
    return out


def _halves_table(
    ruleset: rules.RuleSet,
    half_of: list[str],
    Mt: np.ndarray,
    learned: rules.LearnedPoints,
    model_pts: np.ndarray,
    scorer: LeadScorer,
    config: TrainConfig,
    Xt: np.ndarray,
    yt: np.ndarray,
) -> pd.DataFrame:
    """Per half (fit, engagement), on the test leads: the average points of your rules and of
    the refitted rules, how far each half spreads leads apart (standard deviation of its
    points: how much weight it carries, comparable with the model's, whose points are
    relative to the average lead), and how well each half ranks leads alone."""
    feature_half = _feature_half(scorer, config)
    groups = list(scorer.spec.reason_groups().values())
    group_half = [
        "engagement"
        if all(feature_half[scorer.spec.feature_names[j]] == "engagement" for j in cols)
        else "fit"
        for cols in groups
    ]
    sub = scorer.grades

    def auc(score: np.ndarray) -> float:
        return roc_auc_score(yt, score) if np.ptp(score) > 0 and np.ptp(yt) > 0 else np.nan

    rows = []
    for half in ("fit", "engagement"):
        js = [j for j, h in enumerate(half_of) if h == half]
        part = rules.RuleSet(
            [ruleset.rules[j] for j in js], ruleset.mql, ruleset.sql, ruleset.caps, ruleset.path
        )
        manual = rules.score(part, Mt[:, js]) if js else np.zeros(len(yt))
        refit = Mt[:, js] @ learned.points[js] if js else np.zeros(len(yt))
        gs = [g for g, h in enumerate(group_half) if h == half]
        model = model_pts[:, gs].sum(axis=1) if gs else np.zeros(len(yt))
        submodel = None if sub is None else getattr(sub, half)
        sub_auc = (
            auc(submodel.raw(Xt, [scorer.spec.feature_names.index(c) for c in submodel.columns]))
            if submodel is not None
            else np.nan
        )
        rows.append(
            {
                "half": half,
                "rules": len(js),
                "manual_points": manual.mean(),
                "learned_points": refit.mean(),
                "manual_spread": manual.std(),
                "learned_spread": refit.std(),
                "model_spread": model.std(),
                "manual_auc": auc(manual),
                "model_auc": sub_auc,
            }
        )
    return pd.DataFrame(rows)


def _band_table(band: np.ndarray, y: np.ndarray, scheme: str) -> pd.DataFrame:
    out = []
    for b in ("SQL", "MQL", "Unqualified"):
        hit = band == b
        out.append(
            {
                "scheme": scheme,
                "band": b,
                "leads": int(hit.sum()),
                "share": hit.mean(),
                "conversion": y[hit].mean() if hit.any() else np.nan,
            }
        )
    return pd.DataFrame(out)


def _gains(score: np.ndarray, y: np.ndarray) -> np.ndarray:
    order = np.argsort(-score, kind="stable")
    cum = np.concatenate([[0.0], np.cumsum(y[order]) / max(y.sum(), 1)])
    at = np.linspace(0, 1, 101) * len(y)
    return np.interp(at, np.arange(len(cum)), cum)


def _disagreements(
    ids, manual, manual_band, p_manual, p_model, model_band, y, X, scorer
) -> pd.DataFrame:
    frames = []
    for m_band, s_band in (("SQL", "Unqualified"), ("Unqualified", "SQL")):
        rows = np.flatnonzero((manual_band == m_band) & (model_band == s_band))
        rows = rows[np.argsort(-np.abs(p_model[rows] - p_manual[rows]))][:DISAGREEMENTS]
        if not len(rows):
            continue
        why = scorer.reasons(X[rows])
        for r, w in zip(rows, why, strict=True):
            frames.append(
                {
                    "lead_id": str(ids[r]),
                    "manual_band": m_band,
                    "manual_points": manual[r],
                    "model_band": s_band,
                    "model_score": int(round(100 * p_model[r])),
                    "converted": int(y[r]),
                    "model_reasons": "; ".join(
                        f"{x['field']} {x['value']} {x['points']:+.1f}"
                        for x in w["positive"] + w["negative"]
                    ),
                }
            )
    return pd.DataFrame(
        frames,
        columns=[
            "lead_id",
            "manual_band",
            "manual_points",
            "model_band",
            "model_score",
            "converted",
            "model_reasons",
        ],
    )
