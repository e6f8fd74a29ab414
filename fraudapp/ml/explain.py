"""Explanations: a score's largest feature contributions, in plain words."""

from __future__ import annotations

import numpy as np

from . import features
from .registry import LoadedModel


def explain(model: LoadedModel, row: np.ndarray, top: int) -> list[dict]:
    """The features that moved this row's score most (LightGBM contributions), in plain words."""
    contributions = model.contributions(row)[:-1]
    order = np.argsort(-np.abs(contributions))[:top]
    return [
        {
            "feature": features.FEATURES[i],
            "value": float(row[i]),
            "contribution": float(contributions[i]),
            "text": f"{features.DESCRIPTIONS[features.FEATURES[i]]} ({_format(row[i])}) "
            f"{'raised' if contributions[i] > 0 else 'lowered'} the risk",
        }
        for i in order
    ]


def _format(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"
