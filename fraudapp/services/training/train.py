"""Training a model on the stored history and publishing it to the registry and the catalog."""

from __future__ import annotations

import datetime as dt

import numpy as np
from flask import current_app

from ...extensions import db
from ...ml import features
from ...ml.data import day_date, epoch_day
from ...ml.training import Choice, TrainingResult, Windows, choose, run_protocol
from ..distribution import catalog, releases
from ..serving import registry
from ..transactions.history import load_history


def latest_windows(train_days: int = 7, delay_days: int = 7, test_days: int = 7) -> Windows:
    """Windows whose test period ends on the last day up to today of the stored history that has
    labels: a row dated in the future cannot move the windows."""
    history = load_history()
    today = epoch_day(dt.datetime.now(dt.UTC).date())
    labelled_days = history.day[(history.label >= 0) & (history.day <= today)]
    if len(labelled_days) == 0:
        raise ValueError("no labelled transactions to train on")
    history_end = labelled_days.max()
    first = int(history_end) - (train_days + delay_days + test_days) + 1
    return Windows(day_date(first), train_days, delay_days, test_days)


def train(history, windows: Windows, params: dict | None = None) -> TrainingResult:
    """Train on a history with the protocol; `params`, then TRAINING_PARAMS, over the defaults."""
    return run_protocol(
        history, windows, {**current_app.config["TRAINING_PARAMS"], **(params or {})}
    )


def choose_and_train(history, windows: Windows) -> tuple[TrainingResult, Choice | None]:
    """Train on the training window and parameters that do best on the validation fold, among
    RETRAIN_WINDOW_CHOICES (days) and RETRAIN_PARAM_VARIANTS; with no choices, plain `train`.

    The result is evaluated on the test window of `windows` (its training days aside); the choice,
    with every trial's validation AP, comes beside it.
    """
    config = current_app.config
    days = tuple(config["RETRAIN_WINDOW_CHOICES"])
    if not days:
        return train(history, windows), None
    choice = choose(
        history,
        windows,
        days,
        config["RETRAIN_PARAM_VARIANTS"] or {"default": {}},
        config["TRAINING_PARAMS"],
        random_state=0,
        quick=config["RETRAIN_TRIAL_SPEEDUP"],
    )
    return run_protocol(history, choice.windows, choice.params), choice


def publish(result: TrainingResult, history) -> str:
    """Write a trained model to the registry as a new version, listed in the catalog for the
    prediction nodes; its name."""
    if current_app.config["ROLE"] == "web":
        raise ValueError(
            "this is a prediction node (FRAUDAPP_ROLE=web): models are trained and published "
            "on the trainer"
        )
    version = registry().publish(result.booster, _metadata(result, history))
    catalog.register(version)
    db.session.commit()
    return version


def train_and_publish(
    windows: Windows, promote: bool = False, params: dict | None = None, actor: str = "cli"
) -> tuple[str, TrainingResult]:
    """Train on the stored history, publish a registry version, and release it if asked (or if
    nothing serves yet)."""
    history = load_history()
    result = train(history, windows, params)
    version = publish(result, history)
    if promote or releases.current() is None:
        releases.release(version, "promote", actor)
    return version, result


def _metadata(result: TrainingResult, history) -> dict:
    return {
        "features": list(features.FEATURES),
        "params": result.params,
        "threshold": result.threshold,
        "windows": result.windows.as_dict(),
        "metrics": result.metrics,
        "train_rows": result.train_rows,
        "test_rows": result.test_rows,
        "reference": result.reference,
        "data_fingerprint": _fingerprint(history),
    }


def _fingerprint(history) -> dict:
    return {
        "rows": len(history),
        "labelled": int(np.sum(history.label >= 0)),
        "frauds": int(np.sum(history.label == 1)),
        "first_time": int(history.time.min()) if len(history) else None,
        "last_time": int(history.time.max()) if len(history) else None,
    }
