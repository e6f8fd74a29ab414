"""Champion against challenger on the same transactions: the stored predictions scored by both
(the challenger in shadow), once their labels are known.

Each model is judged at its own decision threshold (from its registry metadata): average precision,
F1 at the threshold and card precision@100, over the whole shadow period and per transaction day.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score
from sqlalchemy import select

from ...extensions import db
from ...ml.data import day_date, group_codes
from ...ml.features import DAY
from ...ml.metrics import at_threshold, card_precision_top_k
from ...ml.registry import RegistryError
from ...models import ModelVersion, Prediction, Transaction
from ..serving import registry


def trained_threshold(version: str) -> float | None:
    """The decision threshold a version was trained with: this registry's metadata, else the
    catalog's (a node that never installed it)."""
    try:
        return float(registry().meta(version)["threshold"])
    except (RegistryError, KeyError, TypeError, ValueError):
        row = db.session.get(ModelVersion, version)
        value = row.summary.get("threshold") if row is not None else None
        return None if value is None else float(value)


def shared_predictions(champion: str, challenger: str) -> dict[str, np.ndarray]:
    """The labelled stored predictions the champion decided and the challenger scored too:
    arrays of day, customer, label, champion score and challenger score (one query)."""
    rows = db.session.execute(
        select(
            Transaction.tx_time,
            Transaction.customer_id,
            Transaction.fraud,
            Prediction.score,
            Prediction.challenger_score,
        )
        .join(Transaction, Transaction.id == Prediction.transaction_id)
        .where(
            Prediction.model_version == champion,
            Prediction.challenger_version == challenger,
            Prediction.challenger_score.is_not(None),
            Transaction.fraud.is_not(None),
        )
    ).all()
    customers = [row[1] for row in rows]
    table = np.array([(row[0], row[2], row[3], row[4]) for row in rows], dtype=np.float64).reshape(
        -1, 4
    )
    return {
        "day": table[:, 0].astype(np.int64) // DAY,
        "customer": group_codes(customers),
        "label": table[:, 1].astype(np.int64),
        "champion": table[:, 2],
        "challenger": table[:, 3],
    }


def figures(scores, labels, days, customers, threshold: float | None) -> dict:
    """AP (None with one class only), F1 at the threshold and card precision@100 (the mean over
    days) of one model's scores."""
    labels = np.asarray(labels)
    both = 0 < labels.sum() < len(labels)
    return {
        "ap": float(average_precision_score(labels, scores)) if both else None,
        "f1": at_threshold(scores, labels, threshold)["f1"] if threshold is not None else None,
        "cp_at_100": card_precision_top_k(days, customers, scores, labels) if len(labels) else None,
    }


def compare(champion: str, challenger: str) -> dict:
    """Champion and challenger on their shared labelled predictions: labels, frauds, labelled
    days, each model's threshold and overall figures, and the figures per transaction day."""
    data = shared_predictions(champion, challenger)
    versions = {"champion": champion, "challenger": challenger}
    thresholds = {role: trained_threshold(version) for role, version in versions.items()}

    def both(mask) -> dict:
        return {
            role: figures(
                data[role][mask],
                data["label"][mask],
                data["day"][mask],
                data["customer"][mask],
                thresholds[role],
            )
            for role in versions
        }

    every = np.ones(len(data["label"]), bool)
    per_day = []
    for day in np.unique(data["day"]):
        mask = data["day"] == day
        per_day.append(
            {
                "day": day_date(int(day)).isoformat(),
                "labels": int(mask.sum()),
                "frauds": int(data["label"][mask].sum()),
                **both(mask),
            }
        )
    overall = both(every)
    return {
        "labels": int(len(data["label"])),
        "frauds": int(data["label"].sum()),
        "days": len(per_day),
        **{
            role: {"version": version, "threshold": thresholds[role], **overall[role]}
            for role, version in versions.items()
        },
        "per_day": per_day,
    }
