"""Drift: reference distributions saved at training time and the population stability index."""

from __future__ import annotations

import math

import numpy as np

from . import features

PSI_BANDS = ((0.1, "stable"), (0.25, "watch"), (math.inf, "act"))


def reference_distributions(
    x: np.ndarray,
    scores: np.ndarray,
    feature_names: tuple[str, ...] = features.FEATURES,
    bins: int = 10,
) -> dict:
    """Decile edges and shares per feature and for the score, the baseline for drift checks."""
    reference = {}
    for name, column in zip((*feature_names, "score"), (*x.T, scores), strict=True):
        edges = np.unique(np.quantile(column, np.linspace(0, 1, bins + 1)))
        counts, _ = np.histogram(column, bins=edges)
        reference[name] = {
            "edges": edges.tolist(),
            "shares": (counts / max(len(column), 1)).tolist(),
        }
    return reference


def psi(reference: dict, values: np.ndarray) -> float | None:
    """Population stability index of values against a reference {edges, shares}."""
    if len(values) == 0:
        return None
    edges = np.asarray(reference["edges"], dtype=float)
    expected = np.asarray(reference["shares"], dtype=float)
    inner = edges[1:-1]
    observed = np.bincount(np.searchsorted(inner, values, side="right"), minlength=len(expected))[
        : len(expected)
    ] / len(values)
    expected, observed = np.clip(expected, 1e-4, None), np.clip(observed, 1e-4, None)
    return float(np.sum((observed - expected) * np.log(observed / expected)))


def band(value: float | None) -> str | None:
    """stable (< 0.1), watch (0.1-0.25) or act (> 0.25)."""
    if value is None:
        return None
    return next(name for limit, name in PSI_BANDS if value < limit)
