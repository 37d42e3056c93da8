"""Reasons: a calibrated score split into points per business reason, and the lists a lead's
answer shows. The main model (`model.LeadScorer.reasons`) and the fit and engagement
sub-models (`grades.Grades.reasons`, "what made the fit a B") share both halves: the points
of one lead always add up to its score on that model's scale.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from leadml.features import FeatureSpec


def split_points(
    contrib: np.ndarray, groups: list[list[int]], calibrate: Callable[[np.ndarray], np.ndarray]
) -> tuple[np.ndarray, float, np.ndarray]:
    """Points per group (n x groups), the base score and the probability the points add up to.

    `contrib` is LightGBM's `pred_contrib` (one column per feature, the bias last); `groups`
    the contrib columns behind each reason; `calibrate` maps log-odds to a probability.

    LightGBM's SHAP values split a lead's log-odds into the average lead's (the bias b) plus
    one part per feature; the parts of one reason are added up. The calibration f (log-odds
    to score) is not a straight line, so the parts cannot just be scaled. The reasons that
    raise the lead's log-odds (together U) and those that lower it (together D) are two
    players of a Shapley game on f: the raising side gets the mean of f(b+U) - f(b) and
    f(b+U+D) - f(b+D), the lowering side the rest of f(b+U+D) - f(b), and each side is shared
    out in proportion to its parts.

    So the points add up exactly, a raising reason never costs points (f never falls), and
    no reason is worth more than 100 points, even for a lead next to the average (U + D near
    0) or a calibration with steep steps, where one slope for all parts breaks down.
    """
    group = np.fromiter((g for g, cols in enumerate(groups) for _ in cols), np.intp)
    column = np.fromiter((j for cols in groups for j in cols), np.intp)
    phi = np.zeros((len(contrib), len(groups)))
    np.add.at(phi.T, group, contrib[:, column].T)  # each group's parts added, in one call
    bias = contrib[:, -1]
    up = np.where(phi > 0, phi, 0.0).sum(axis=1)
    down = np.where(phi < 0, phi, 0.0).sum(axis=1)

    def f(z: np.ndarray) -> np.ndarray:
        return 100 * calibrate(z)

    f0, f_up, f_down, f_all = f(bias), f(bias + up), f(bias + down), f(bias + up + down)
    gain_up = 0.5 * ((f_up - f0) + (f_all - f_down))
    gain_down = (f_all - f0) - gain_up
    share_up = gain_up / np.where(up > 0, up, 1.0)
    share_down = gain_down / np.where(down < 0, down, -1.0)
    pts = phi * np.where(phi > 0, share_up[:, None], np.where(phi < 0, share_down[:, None], 0))
    base = float(f0[0]) if len(f0) else float(f(np.zeros(1))[0])
    return pts, base, f_all / 100


def reason_lists(
    pts: np.ndarray,
    base: float,
    labels: list[str],
    columns: list[list[int]],
    spec: FeatureSpec,
    X: np.ndarray,
    p: np.ndarray,
    top: int = 3,
) -> list[dict]:
    """Up to `top` positive and `top` negative reasons per lead, largest first, and the rest.

    Each reason: {"field": business name (`labels`), "value": the lead's value (`spec.describe`
    of its `columns` in the full feature row `X[i]`), "points": rounded to 0.1}; points under
    0.05 are not reasons. `other` is everything not listed (the smaller reasons, the rounding
    of the listed points and of the base score), so base_score + positive + negative + other
    == total, exactly: 100 x `p` rounded to 6 decimals.
    """
    order = np.argsort(-pts, axis=1, kind="stable")
    base_shown = round(base, 1)
    out = []
    for i in range(len(X)):

        def reason(g: int, i: int = i) -> dict:
            return {
                "field": labels[g],
                "value": spec.describe(columns[g], X[i]),
                "points": round(float(pts[i, g]), 1),
            }

        ranked = order[i]
        positive = [reason(g) for g in ranked[:top] if pts[i, g] >= 0.05]
        negative = [reason(g) for g in ranked[::-1][:top] if pts[i, g] <= -0.05]
        total = round(100 * round(float(p[i]), 6), 4)
        listed = base_shown + sum(r["points"] for r in positive + negative)
        out.append(
            {
                "base_score": base_shown,
                "positive": positive,
                "negative": negative,
                "other": round(total - listed, 4),
                "total": total,
            }
        )
    return out
