"""Explanations: a score's largest feature contributions, in plain words."""

from __future__ import annotations

import numpy as np

from . import features
from .registry import LoadedModel


def explain_rows(model: LoadedModel, rows: np.ndarray, top: int) -> list[list[dict]]:
    """Per row of a full feature matrix, the model's features that moved its score most (LightGBM
    contributions), in plain words."""
    names = model.feature_names
    return [
        _reasons(row, contributions[:-1], top, names)
        for row, contributions in zip(model.own(rows), model.contributions(rows), strict=True)
    ]


def _reasons(row: np.ndarray, contributions: np.ndarray, top: int, names) -> list[dict]:
    order = np.argsort(-np.abs(contributions))[:top]
    return [
        {
            "feature": names[i],
            "value": float(row[i]),
            "contribution": float(contributions[i]),
            "text": f"{features.DESCRIPTIONS[names[i]]} ({_format(row[i])}) "
            f"{'raised' if contributions[i] > 0 else 'lowered'} the risk",
        }
        for i in order
    ]


def _format(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"
