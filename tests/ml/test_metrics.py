"""Metrics: card precision as the Handbook defines it, threshold metrics, threshold choice."""

import numpy as np
import pytest

from fraudapp.ml.metrics import at_threshold, best_f1_threshold, card_precision_top_k


def test_card_precision_takes_each_customers_best_score_and_skips_found_cards():
    days = np.array([0, 0, 0, 0, 1, 1, 1])
    customers = np.array([1, 1, 2, 3, 1, 2, 3])
    scores = np.array([0.1, 0.9, 0.8, 0.2, 0.99, 0.5, 0.4])
    labels = np.array([0, 1, 0, 0, 1, 1, 0])
    # day 0: top-2 customers 1 (fraud) and 2 (genuine) -> 0.5; customer 1 is then known
    # day 1: customers 2 (fraud) and 3 -> 0.5
    assert card_precision_top_k(days, customers, scores, labels, k=2) == pytest.approx(0.5)
    assert card_precision_top_k(days, customers, scores, labels, k=1) == pytest.approx(1.0)


def test_threshold_metrics():
    scores = np.array([0.9, 0.8, 0.3, 0.1])
    labels = np.array([1, 0, 1, 0])
    assert at_threshold(scores, labels, 0.5) == {"precision": 0.5, "recall": 0.5, "f1": 0.5}
    assert at_threshold(scores, labels, 0.95)["f1"] == 0.0


def test_best_f1_threshold_separates_when_it_can():
    scores = np.array([0.1, 0.2, 0.35, 0.7, 0.8])
    labels = np.array([0, 0, 0, 1, 1])
    threshold = best_f1_threshold(scores, labels)
    assert 0.35 < threshold <= 0.7
    assert at_threshold(scores, labels, threshold)["f1"] == 1.0
