"""Feature matrices from stored feature snapshots, in a model's own feature order (a model may use
any subset of the features, `LoadedModel.feature_names`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def from_dicts(snapshots: Sequence[dict], wanted: Sequence[str]) -> np.ndarray:
    """A float matrix of feature snapshots (dicts by feature name), columns in `wanted` order; a
    feature a snapshot lacks is NaN (LightGBM treats it as missing)."""
    matrix = np.full((len(snapshots), len(wanted)), np.nan)
    for row, snapshot in enumerate(snapshots):
        values = (snapshot.get(name) for name in wanted)
        matrix[row] = [np.nan if value is None else value for value in values]
    return matrix
