"""Training and evaluation on the Handbook's time-window protocol.

Train on `train_days` from `train_start`, leave `delay_days` (labels not known yet), test on the
next `test_days`, dropping customers already known to be compromised. The decision threshold is
chosen on a validation fold — the same protocol shifted back by `test_days` — never on the test
window.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
from sklearn.metrics import average_precision_score

from . import features
from .data import History, epoch_day
from .drift import reference_distributions
from .metrics import best_f1_threshold, evaluate

DEFAULT_PARAMS = {
    "objective": "binary",
    "learning_rate": 0.03,
    "num_leaves": 7,
    "min_child_samples": 50,
    "max_bin": 4095,  # fine amount bins: a sharp split where large amounts turn fraudulent
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "num_boost_round": 400,
    "verbosity": -1,
}
# The parameter variants a retraining run tries beside the defaults (`choose`), by name.
PARAM_VARIANTS = {
    "default": {},
    "wider": {"num_leaves": 31, "min_child_samples": 100},
}
# LightGBM's own defaults (100 rounds), for baselines: pass as `base_params`.
LIGHTGBM_DEFAULTS = {"objective": "binary", "num_boost_round": 100, "verbosity": -1}


@dataclass(frozen=True)
class Windows:
    """The protocol's windows: training days, a delay gap, and test days."""

    train_start: dt.date
    train_days: int = 7
    delay_days: int = 7
    test_days: int = 7

    @property
    def first_day(self) -> int:
        """The first training day as a day number since the epoch."""
        return epoch_day(self.train_start)

    def shifted(self, days: int) -> Windows:
        """The same windows moved `days` earlier."""
        return Windows(
            self.train_start - dt.timedelta(days=days),
            self.train_days,
            self.delay_days,
            self.test_days,
        )

    def with_train_days(self, days: int) -> Windows:
        """The same training end, delay and test days, with `days` training days."""
        return Windows(
            self.train_start + dt.timedelta(days=self.train_days - days),
            days,
            self.delay_days,
            self.test_days,
        )

    def as_dict(self) -> dict:
        """The windows as ISO dates, for metadata."""
        start = self.train_start
        test_start = start + dt.timedelta(days=self.train_days + self.delay_days)
        return {
            "train_start": start.isoformat(),
            "train_end": (start + dt.timedelta(days=self.train_days - 1)).isoformat(),
            "test_start": test_start.isoformat(),
            "test_end": (test_start + dt.timedelta(days=self.test_days - 1)).isoformat(),
        }


def split(history: History, windows: Windows) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays of the labelled training rows and of the test rows, as the Handbook builds them.

    A test day drops the customers with a known fraud in the training window or in the delay-period
    days up to the day before it.
    """
    day, labelled = history.day, history.label >= 0
    first, train_end = windows.first_day, windows.first_day + windows.train_days
    train = np.flatnonzero((day >= first) & (day < train_end) & labelled)
    fraud = history.label == 1
    known = set(history.customer[train[fraud[train]]].tolist())
    test_parts = []
    for i in range(windows.test_days):
        delay_day = train_end + i - 1
        known |= set(history.customer[(day == delay_day) & fraud].tolist())
        rows = np.flatnonzero((day == train_end + windows.delay_days + i) & labelled)
        test_parts.append(rows[~np.isin(history.customer[rows], list(known))])
    return train, np.concatenate(test_parts) if test_parts else np.array([], dtype=int)


def fit(
    x: np.ndarray,
    y: np.ndarray,
    params: dict | None = None,
    random_state: int = 0,
    *,
    base_params: dict = DEFAULT_PARAMS,
    feature_names: tuple[str, ...] = features.FEATURES,
) -> lgb.Booster:
    """A LightGBM booster trained on (x, y), the columns of x named by `feature_names`.

    `params` override `base_params`: the project's defaults, or `LIGHTGBM_DEFAULTS` for LightGBM's.
    """
    params = {**base_params, **(params or {})}
    rounds = int(params.pop("num_boost_round"))
    params.setdefault("num_threads", training_threads())
    params["seed"] = random_state
    data = lgb.Dataset(x, label=y, feature_name=list(feature_names), free_raw_data=True)
    return lgb.train(params, data, num_boost_round=rounds)


def training_threads() -> int:
    """Threads for training: FRAUDAPP_TRAINING_THREADS, else all cores."""
    return int(os.environ.get("FRAUDAPP_TRAINING_THREADS", os.cpu_count() or 1))


@dataclass
class TrainingResult:
    """A trained booster with its threshold, test metrics and the facts the registry keeps."""

    booster: lgb.Booster
    threshold: float
    metrics: dict
    windows: Windows
    params: dict
    train_rows: int
    test_rows: int
    reference: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """The flat result `flask train --json` prints."""
        return {
            **self.metrics,
            "train_rows": self.train_rows,
            "test_rows": self.test_rows,
            **self.windows.as_dict(),
        }


def run_protocol(
    history: History,
    windows: Windows,
    params: dict | None = None,
    random_state: int = 0,
    *,
    base_params: dict = DEFAULT_PARAMS,
    feature_names: tuple[str, ...] = features.FEATURES,
) -> TrainingResult:
    """Train on the windows, pick the threshold on the validation fold, evaluate on the test window.

    `feature_names` (a subset of `features.FEATURES`) and `base_params` are as in `fit`.
    """
    columns = [features.FEATURES.index(name) for name in feature_names]
    x = history.features()[:, columns]
    y = (history.label == 1).astype(int)
    model = {"base_params": base_params, "feature_names": feature_names}
    threshold = _validation_threshold(
        history, x, y, windows.shifted(windows.test_days), params, random_state, model
    )
    train, test = split(history, windows)
    _require_rows(train, y, "training")
    booster = fit(x[train], y[train], params, random_state, **model)
    scores = predict(booster, x[test])
    metrics = (
        evaluate(scores, y[test], history.day[test], history.customer[test], threshold)
        if len(test)
        else {"threshold": threshold}
    )
    return TrainingResult(
        booster=booster,
        threshold=threshold,
        metrics=metrics,
        windows=windows,
        params={**base_params, **(params or {})},
        train_rows=len(train),
        test_rows=len(test),
        reference=reference_distributions(x[train], predict(booster, x[train]), feature_names),
    )


def _validation_threshold(history, x, y, windows, params, random_state, model) -> float:
    """The F1-optimal threshold of a model trained and validated one test-length earlier."""
    train, valid = split(history, windows)
    if len(train) == 0 or y[train].sum() == 0 or len(valid) == 0:
        return 0.5
    booster = fit(x[train], y[train], params, random_state, **model)
    return best_f1_threshold(predict(booster, x[valid]), y[valid])


@dataclass(frozen=True)
class Trial:
    """One training window and parameter variant tried on the validation fold, and its AP there."""

    train_days: int
    variant: str
    validation_ap: float | None

    def as_dict(self) -> dict:
        """The trial as JSON-able facts."""
        return {
            "train_days": self.train_days,
            "variant": self.variant,
            "validation_ap": self.validation_ap,
        }


@dataclass(frozen=True)
class Choice:
    """The training window and parameters `choose` kept, and every trial."""

    windows: Windows
    variant: str
    params: dict
    trials: list[Trial]

    def as_dict(self) -> dict:
        """The choice as JSON-able facts (what a run records)."""
        return {
            "train_days": self.windows.train_days,
            "variant": self.variant,
            "params": self.params,
            "trials": [trial.as_dict() for trial in self.trials],
        }


def choose(
    history: History,
    windows: Windows,
    train_days: tuple[int, ...],
    variants: dict[str, dict],
    params: dict | None = None,
    random_state: int = 0,
    quick: int = 1,
) -> Choice:
    """The training window length and parameter variant with the best AP on the validation fold.

    The validation fold is the protocol's: `windows` shifted back by their test days. Each trial
    trains on `days` ending where that fold's training ends, with `params` then the variant over
    the defaults, and is scored on the same validation rows (those of `windows`' own length); the
    first best wins ties. `quick` > 1 trains the trials that many times faster (the learning rate
    times `quick`, the rounds divided by it): a cheaper ranking of the same choices.
    """
    fold = windows.shifted(windows.test_days)
    x, y = history.features(), (history.label == 1).astype(int)
    _, valid = split(history, fold)
    trials, best = [], None
    for days in train_days:
        train, _ = split(history, fold.with_train_days(days))
        for name, variant in variants.items():
            merged = {**(params or {}), **variant}
            scores = _trial_scores(x, y, train, valid, quicker(merged, quick), random_state)
            ap = None if scores is None else float(average_precision_score(y[valid], scores))
            trials.append(Trial(days, name, ap))
            if ap is not None and (best is None or ap > best[0]):
                best = (ap, days, name, merged)
    if best is None:
        raise ValueError("no training window of the choices has labelled rows of both classes")
    _, days, name, merged = best
    return Choice(windows.with_train_days(days), name, merged, trials)


def quicker(params: dict, factor: int, base_params: dict = DEFAULT_PARAMS) -> dict:
    """`params` trained `factor` times faster: learning rate times it, rounds divided by it."""
    if factor <= 1:
        return params
    merged = {**base_params, **params}
    return {
        **params,
        "learning_rate": merged.get("learning_rate", 0.1) * factor,
        "num_boost_round": max(1, int(merged["num_boost_round"]) // factor),
    }


def _trial_scores(x, y, train, valid, params, random_state) -> np.ndarray | None:
    """Validation scores of a model trained on the rows `train`; None when it cannot be judged."""
    if len(valid) == 0 or y[valid].sum() == 0 or len(train) == 0:
        return None
    if y[train].sum() in (0, len(train)):
        return None
    return predict(fit(x[train], y[train], params, random_state), x[valid])


def _require_rows(rows: np.ndarray, y: np.ndarray, what: str) -> None:
    """Refuse to train without rows of both classes."""
    if len(rows) == 0 or y[rows].sum() == 0 or y[rows].sum() == len(rows):
        raise ValueError(
            f"the {what} window needs labelled transactions of both classes "
            f"(has {len(rows)} rows, {int(y[rows].sum()) if len(rows) else 0} frauds)"
        )


def predict(booster: lgb.Booster, x: np.ndarray) -> np.ndarray:
    """Fraud probabilities for the rows of x."""
    return booster.predict(x, num_threads=training_threads()) if len(x) else np.array([])
