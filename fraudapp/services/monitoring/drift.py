"""Drift of the serving version: its recent predictions against the distributions saved when it
was trained."""

from __future__ import annotations

import datetime as dt

import numpy as np
from flask import current_app
from sqlalchemy import select

from ...extensions import db
from ...ml import features
from ...ml.drift import band, psi
from ...models import Prediction


def drift(meta: dict, days: int) -> list[dict]:
    """PSI per feature and for the score: the version's recent predictions (the latest
    DRIFT_SAMPLE of the last `days`) against the reference distributions saved in training."""
    reference = meta.get("reference") or {}
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    rows = db.session.execute(
        select(Prediction.features, Prediction.score)
        .where(Prediction.model_version == meta["version"], Prediction.created_at >= since)
        .order_by(Prediction.created_at.desc())
        .limit(current_app.config["DRIFT_SAMPLE"])
    ).all()
    columns = {
        name: np.array([r[0].get(name, np.nan) for r in rows], dtype=float)
        for name in features.FEATURES
    }
    columns["score"] = np.array([r[1] for r in rows], dtype=float)
    result = []
    for name, values in columns.items():
        if name in reference:
            values = values[~np.isnan(values)]
            enough = len(values) >= current_app.config["DRIFT_MIN_SAMPLES"]
            value = psi(reference[name], values) if enough else None
            result.append({"feature": name, "psi": value, "band": band(value), "n": len(values)})
    return result
