"""Explanations: a score's largest feature contributions, in plain words."""

from __future__ import annotations

import numpy as np

from . import features
from .registry import LoadedModel


def explain_rows(model: LoadedModel, rows: np.ndarray, top: int) -> list[list[dict]]:
    """Per row, the features that moved its score most (LightGBM contributions), in plain words."""
    return [
        _reasons(row, contributions[:-1], top)
        for row, contributions in zip(rows, model.contributions(rows), strict=True)
    ]


def _reasons(row: np.ndarray, contributions: np.ndarray, top: int) -> list[dict]:
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
