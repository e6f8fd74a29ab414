"""The model this worker serves, its decision threshold, the registry it comes from, and the
shadowed challenger it also scores with (never for a decision)."""

from __future__ import annotations

import time

from flask import current_app
from sqlalchemy import select

from ..extensions import db
from ..ml.registry import LoadedModel, Registry, RegistryError, ServingModel, ServingState
from ..models import ModelRelease, ModelSetting
from . import audit

SERVING_ACTIONS = ("promote", "rollback")  # release rows that change the serving version
SHADOW_ACTIONS = ("shadow", "unshadow")  # release rows that change the challenger


class ModelUnavailable(Exception):
    """No model version is serving."""


def _serving() -> ServingModel:
    return current_app.extensions["fraudapp.model"]


def registry() -> Registry:
    """The model registry of this process (its MODEL_DIR)."""
    return _serving().registry


def current_model() -> LoadedModel | None:
    """The model this process serves now, or None before the first version."""
    return _serving().get()


def serving_model() -> LoadedModel:
    """The model this process serves now (a fallback while the released one cannot load)."""
    model = current_model()
    if model is None:
        raise ModelUnavailable(unavailable_reason(model_state()))
    return model


def model_state() -> ServingState:
    """The version this process serves, the released one, and why they differ."""
    return _serving().state()


def unavailable_reason(state: ServingState) -> str:
    """Why no model serves, and what an operator should do: "no version yet" is not the same as
    "versions present but none loads"."""
    if state.problem is None:
        return "no model is serving yet: run `flask init-demo` or `flask train`"
    return (
        f"no model version can be loaded (the released one: {state.problem}): restore the files "
        "of the model directory or promote an intact version; this process retries on its own"
    )


def load_version(version: str) -> LoadedModel | None:
    """Any version of the registry, loaded once per process; None if it cannot be loaded."""
    try:
        return _serving().version(version)
    except RegistryError:
        return None


def serving_threshold(version: str, trained_threshold: float) -> float:
    """The admin's threshold for a version if one was set, else the one chosen in training."""
    value = db.session.scalar(
        select(ModelSetting.threshold).where(ModelSetting.model_version == version)
    )
    return trained_threshold if value is None else value


def decision_threshold(model: LoadedModel) -> float:
    """The version's serving threshold, re-read from the database at most once per
    MODEL_CHECK_INTERVAL in each worker."""
    now = time.monotonic()
    cached = _thresholds.get(model.version)
    if cached and cached[0] > now:
        return cached[1]
    value = serving_threshold(model.version, model.threshold)
    _thresholds[model.version] = (now + current_app.config["MODEL_CHECK_INTERVAL"], value)
    return value


# Shared by a worker's threads: a get and a set of a whole entry are atomic, and two threads that
# refresh the same entry at once only both read the database.
_thresholds: dict[str, tuple[float, float]] = {}


def set_threshold(version: str, threshold: float, user: str) -> None:
    """Set the serving threshold of a version; audited; every worker uses it within a second."""
    if not 0.0 < threshold < 1.0:
        raise ValueError("the threshold must be between 0 and 1")
    setting = db.session.get(ModelSetting, version)
    old = setting.threshold if setting else None
    if setting is None:
        setting = ModelSetting(model_version=version, threshold=threshold, updated_by=user)
        db.session.add(setting)
    setting.threshold, setting.updated_by = threshold, user
    audit.record("threshold.changed", target=version, details={"from": old, "to": threshold})
    db.session.commit()


def shadowed() -> str | None:
    """The challenger every node also scores with, from the database (None: no shadow)."""
    row = db.session.execute(
        select(ModelRelease.version, ModelRelease.action)
        .where(ModelRelease.action.in_(SHADOW_ACTIONS))
        .order_by(ModelRelease.id.desc())
        .limit(1)
    ).first()
    return row.version if row is not None and row.action == "shadow" else None


def challenger_model() -> LoadedModel | None:
    """The challenger this worker scores beside the champion: the database's shadow pointer
    re-read, and the version loaded, at most once per MODEL_CHECK_INTERVAL (a new challenger is
    picked up without a restart). None without a shadow, or while the challenger cannot be loaded
    here — the champion serves regardless (see `challenger_state`)."""
    return _challenger_entry()[1]


def challenger_state() -> tuple[str | None, str | None]:
    """(the challenger's version, why this worker cannot score with it — None when it can)."""
    version, _, problem = _challenger_entry()[2]
    return version, problem


def _challenger_entry() -> tuple[float, LoadedModel | None, tuple]:
    now = time.monotonic()
    extensions = current_app.extensions
    cached = extensions.get("fraudapp.challenger")
    if cached and cached[0] > now:
        return cached
    version, model, problem = shadowed(), None, None
    if version is not None:
        try:
            model = _serving().version(version)
        except RegistryError as exc:
            problem = f"{exc} (serving the champion alone)"
    entry = (now + current_app.config["MODEL_CHECK_INTERVAL"], model, (version, model, problem))
    extensions["fraudapp.challenger"] = entry
    return entry
