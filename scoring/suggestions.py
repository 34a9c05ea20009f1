"""Suggested points (PRODUCT.md §10): an L2-regularised logistic regression of acceptance on rule hits (as of
each handoff, scoring.evidence), turned into points on the criteria's own scale and written into the draft for
a person to preview and publish — never published by itself.

Plain Python: handoffs with the same hits are fitted as one weighted row, so the work grows with the distinct
patterns of hits (a few hundred), not with the handoffs; Newton's method converges in a handful of steps.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from django.db import transaction

from scoring.evidence import Evidence
from scoring.models import CriteriaVersion

MINIMUM = 200  # labelled handoffs before a suggestion means anything
L2 = 1.0


@dataclass(frozen=True)
class Suggestion:
    name: str
    kind: str
    old: float
    new: float
    why: str


def logistic(rows: list[tuple[tuple[bool, ...], bool]], *, l2: float = L2, steps: int = 50) -> list[float]:
    """Coefficients (intercept first) maximising the log-likelihood of ``rows`` — (hits, accepted) — minus
    ``l2``/2 × the squared coefficients (the intercept is not penalised)."""
    patterns = Counter((tuple(1.0 if h else 0.0 for h in hits), accepted) for hits, accepted in rows)
    k = 1 + (len(rows[0][0]) if rows else 0)
    w = [0.0] * k
    for _ in range(steps):
        gradient = [0.0] * k
        hessian = [[0.0] * k for _ in range(k)]
        for (hits, accepted), count in patterns.items():
            x = (1.0, *hits)
            z = sum(wi * xi for wi, xi in zip(w, x, strict=True))
            p = 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))
            for i in range(k):
                if x[i]:
                    gradient[i] += count * (p - accepted) * x[i]
                    for j in range(k):
                        if x[j]:
                            hessian[i][j] += count * p * (1 - p) * x[i] * x[j]
        for i in range(1, k):
            gradient[i] += l2 * w[i]
            hessian[i][i] += l2
        hessian[0][0] += 1e-9  # an intercept with every row one way stays finite
        step = _solve(hessian, gradient)
        w = [wi - si for wi, si in zip(w, step, strict=True)]
        if max(abs(s) for s in step) < 1e-9:
            break
    return w


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """x with a·x = b, by Gaussian elimination with partial pivoting (a is symmetric positive definite)."""
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(col + 1, n):
            factor = m[r][col] / m[col][col]
            for c in range(col, n + 1):
                m[r][c] -= factor * m[col][c]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (m[r][n] - sum(m[r][c] * x[c] for c in range(r + 1, n))) / m[r][r]
    return x


def suggest(evidence: Evidence) -> list[Suggestion]:
    """Points for each rule from the fitted coefficients, scaled so the rules keep the total size of their
    points (Σ|points|) — the thresholds keep their meaning — with a line saying why. Dead rules keep theirs."""
    if evidence.labelled < MINIMUM:
        raise NotEnoughHandoffs(MINIMUM - evidence.labelled)
    coefficients = logistic([(h.hits, h.accepted) for h in evidence.handoffs])[1:]
    live = [(r, c) for r, c in zip(evidence.rules, coefficients, strict=True) if r.matched]
    size = sum(abs(r.points) for r, _ in live)
    weight = sum(abs(c) for _, c in live)
    scale = size / weight if weight else 0.0
    suggestions = []
    for rule, coefficient in zip(evidence.rules, coefficients, strict=True):
        if not rule.matched:
            suggestions.append(Suggestion(rule.name, rule.kind, rule.points, rule.points, "matched nobody: kept"))
            continue
        new = float(round(coefficient * scale))
        rate_with, rate_without = rule.rate_with, rule.rate_without
        rates = (
            f"accepted {rate_with:.0%} with it, {rate_without:.0%} without"
            if rate_with is not None and rate_without is not None
            else f"matched all {rule.matched} handoffs"
        )
        direction = "raised" if new > rule.points else "lowered" if new < rule.points else "kept"
        suggestions.append(Suggestion(rule.name, rule.kind, rule.points, new, f"{rates}: {direction}"))
    return suggestions


class NotEnoughHandoffs(Exception):
    def __init__(self, missing: int):
        super().__init__(f"{missing} more labelled handoffs are needed for a suggestion (at least {MINIMUM}).")
        self.missing = missing


def apply(draft: CriteriaVersion, suggestions: list[Suggestion]) -> int:
    """Write the suggested points into the draft's rules of the same name and kind; returns how many changed."""
    changed = 0
    with transaction.atomic():
        for s in suggestions:
            rules = draft.behaviour_rules if s.kind == "behaviour" else draft.fit_rules
            if s.new != s.old:
                changed += rules.filter(name=s.name, points=s.old).update(points=s.new)
    return changed
