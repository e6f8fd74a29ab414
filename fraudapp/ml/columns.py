"""Feature matrices in a model's own feature order: a model may use any subset of the features,
in its own order (`booster.feature_name()`), whatever order the rows at hand were built in."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def in_order(rows: np.ndarray, names: Sequence[str], wanted: Sequence[str]) -> np.ndarray:
    """The columns `wanted` of a matrix whose columns are `names` (the same matrix when the two
    agree); KeyError names a wanted feature the rows lack."""
    if list(names) == list(wanted):
        return rows
    index = {name: k for k, name in enumerate(names)}
    return rows[:, [index[name] for name in wanted]]


def from_dicts(snapshots: Sequence[dict], wanted: Sequence[str]) -> np.ndarray:
    """A float matrix of feature snapshots (dicts by feature name), columns in `wanted` order; a
    feature a snapshot lacks is NaN (LightGBM treats it as missing)."""
    matrix = np.full((len(snapshots), len(wanted)), np.nan)
    for row, snapshot in enumerate(snapshots):
        values = (snapshot.get(name) for name in wanted)
        matrix[row] = [np.nan if value is None else value for value in values]
    return matrix
