"""Fraud-detection metrics: threshold-free (AUC, AP, card precision top-k) and at a threshold."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score


def card_precision_top_k(days, customers, scores, labels, k: int = 100) -> float:
    """Card precision top-k as the Handbook defines it.

    Each day, score each customer by their highest transaction score, skip customers already
    detected on earlier days, take the k best, and count the share really compromised (a fraud
    that day); the result is the mean over days.
    """
    days, customers = np.asarray(days), np.asarray(customers)
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels)
    detected: set[int] = set()
    per_day = []
    for day in np.unique(days):
        mask = days == day
        per_customer = _per_customer_max(customers[mask], scores[mask], labels[mask])
        candidates = [row for row in per_customer if row[0] not in detected]
        candidates.sort(key=lambda row: -row[1])
        top = candidates[:k]
        hits = [customer for customer, _, fraud in top if fraud]
        per_day.append(len(hits) / k)
        detected.update(hits)
    return float(np.mean(per_day)) if per_day else 0.0


def _per_customer_max(customers, scores, labels) -> list[tuple[int, float, int]]:
    """(customer, max score, max label) per customer, in customer order."""
    order = np.argsort(customers, kind="stable")
    unique, starts = np.unique(customers[order], return_index=True)
    max_score = np.maximum.reduceat(scores[order], starts)
    max_label = np.maximum.reduceat(labels[order], starts)
    return list(zip(unique.tolist(), max_score.tolist(), max_label.tolist(), strict=True))


def rates(tp, fp, fn) -> dict:
    """Precision, recall and F1 from confusion counts.

    Counts may be numbers (undefined rates are None) or numpy arrays, e.g. one entry per threshold
    of a score histogram (undefined rates are 0).
    """
    tp, fp, fn = (np.asarray(v, dtype=float) for v in (tp, fp, fn))
    figures = {
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
    }
    if tp.ndim == 0:
        return {k: None if math.isnan(v) else float(v) for k, v in figures.items()}
    return {k: np.nan_to_num(v) for k, v in figures.items()}


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(
        numerator,
        denominator,
        out=np.full(np.shape(numerator), np.nan),
        where=denominator > 0,
    )


def at_threshold(scores, labels, threshold: float) -> dict[str, float]:
    """Precision, recall and F1 of the decision score ≥ threshold (0 where undefined)."""
    predicted = np.asarray(scores) >= threshold
    labels = np.asarray(labels).astype(bool)
    tp = int(np.sum(predicted & labels))
    fp = int(np.sum(predicted & ~labels))
    fn = int(np.sum(~predicted & labels))
    return {k: v or 0.0 for k, v in rates(tp, fp, fn).items()}


def ap_from_histogram(frauds: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Average precision from score histograms, bins ranked from the highest score down (the
    last axis); transactions in one bin count as tied. NaN where a histogram has no fraud."""
    frauds, counts = np.asarray(frauds, dtype=float), np.asarray(counts, dtype=float)
    cum_frauds, cum_counts = np.cumsum(frauds, axis=-1), np.cumsum(counts, axis=-1)
    precision = np.divide(
        cum_frauds, cum_counts, out=np.zeros_like(cum_frauds), where=cum_counts > 0
    )
    return _ratio((precision * frauds).sum(axis=-1), frauds.sum(axis=-1))


def best_f1_threshold(scores, labels) -> float:
    """The threshold that maximises F1 on (validation) scores; 0.5 when there is no fraud."""
    labels = np.asarray(labels)
    if labels.sum() == 0:
        return 0.5
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1 = np.divide(
        2 * precision * recall,
        precision + recall,
        out=np.zeros_like(precision),
        where=(precision + recall) > 0,
    )
    return float(thresholds[int(np.argmax(f1[:-1]))])


def evaluate(scores, labels, days, customers, threshold: float, k: int = 100) -> dict[str, float]:
    """All the metrics the project reports, on one scored window."""
    labels = np.asarray(labels)
    both_classes = 0 < labels.sum() < len(labels)
    return {
        "auc": float(roc_auc_score(labels, scores)) if both_classes else float("nan"),
        "ap": float(average_precision_score(labels, scores)) if both_classes else float("nan"),
        "cp_at_100": card_precision_top_k(days, customers, scores, labels, k),
        "threshold": float(threshold),
        **at_threshold(scores, labels, threshold),
    }


def finite(metrics: dict | None) -> dict | None:
    """Metrics with NaN (AUC and AP of a window with one class only) as None, for JSON: strict
    JSON, PostgreSQL's included, has no NaN."""
    if metrics is None:
        return None
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in metrics.items()}
