"""The model registry: immutable versions, verified loads, atomic pointer, hot swap."""

import json

import lightgbm as lgb
import numpy as np
import pytest

from fraudapp.ml import features
from fraudapp.ml.registry import Registry, RegistryError, ServingModel


@pytest.fixture(scope="module")
def booster():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, len(features.FEATURES)))
    y = (x[:, 0] + rng.normal(size=400) > 1).astype(int)
    data = lgb.Dataset(x, label=y, feature_name=list(features.FEATURES))
    return lgb.train({"objective": "binary", "verbosity": -1, "num_threads": 1}, data, 5)


def _meta():
    return {"features": list(features.FEATURES), "threshold": 0.4}


def test_versions_are_numbered_and_loaded_with_metadata(tmp_path, booster):
    registry = Registry(tmp_path)
    assert registry.publish(booster, _meta()) == "v1"
    assert registry.publish(booster, _meta()) == "v2"
    assert registry.versions() == ["v1", "v2"]
    loaded = registry.load("v2")
    assert loaded.threshold == 0.4
    assert loaded.meta["libraries"]["lightgbm"] == lgb.__version__
    assert len(loaded.meta["sha256"]) == 64
    row = np.zeros(len(features.FEATURES))
    assert 0 <= loaded.score(row) <= 1
    assert not list(tmp_path.glob(".staging-*"))


def test_existing_version_is_never_overwritten(tmp_path, booster):
    registry = Registry(tmp_path)
    registry.publish(booster, _meta())
    with pytest.raises(RegistryError, match="exists"):
        registry.install("tree", _meta(), version="v1")


@pytest.mark.parametrize("name", ["../etc", "v0", "v1/../v2", "latest", "", "v01"])
def test_names_are_checked_before_they_become_paths(tmp_path, name):
    with pytest.raises(RegistryError, match="invalid version"):
        Registry(tmp_path).path(name)


def test_corrupt_model_is_refused(tmp_path, booster):
    registry = Registry(tmp_path)
    registry.publish(booster, _meta())
    (tmp_path / "v1" / "model.txt").write_text("tree\n")
    with pytest.raises(RegistryError, match="checksum"):
        registry.load("v1")


def test_feature_mismatch_is_refused(tmp_path, booster):
    registry = Registry(tmp_path)
    registry.publish(booster, {**_meta(), "features": ["TX_AMOUNT"]})
    with pytest.raises(RegistryError, match="feature list"):
        registry.load("v1")


def test_pointer_promote_and_rollback(tmp_path, booster):
    registry = Registry(tmp_path)
    for _ in range(3):
        registry.set_current(registry.publish(booster, _meta()))
    assert registry.current() == "v3"
    assert registry.previous() == "v2"
    registry.set_current("v2", action="rollback")
    assert registry.previous() == "v1"
    registry.set_current("v1", action="rollback")
    assert registry.previous() is None  # rollbacks walk back through promotions, not forth
    registry.set_current("v3")
    assert registry.previous() == "v1"


def test_serving_model_swaps_and_keeps_serving_when_the_new_version_is_bad(tmp_path, booster):
    registry = Registry(tmp_path)
    registry.set_current(registry.publish(booster, _meta()))
    serving = ServingModel(registry, check_interval=0.0)
    assert serving.get().version == "v1"
    registry.set_current(registry.publish(booster, _meta()))
    assert serving.get().version == "v2"
    bad = registry.publish(booster, _meta())
    meta = json.loads((tmp_path / bad / "meta.json").read_text())
    (tmp_path / bad / "meta.json").write_text(json.dumps({**meta, "sha256": "0" * 64}))
    registry.set_current(bad, verify=False)
    assert serving.get().version == "v2"
    assert "checksum" in serving.last_error


def test_checks_are_throttled(tmp_path, booster):
    registry = Registry(tmp_path)
    registry.set_current(registry.publish(booster, _meta()))
    serving = ServingModel(registry, check_interval=3600)
    assert serving.get().version == "v1"
    registry.set_current(registry.publish(booster, _meta()))
    assert serving.get().version == "v1"  # not checked again within the interval
