"""The model registry: immutable versions, verified loads, atomic pointer, hot swap, healing."""

import errno
import json
import logging
import os
import threading
import time

import lightgbm as lgb
import numpy as np
import pytest

from fraudapp.ml import features
from fraudapp.ml.registry import Registry, RegistryError, ServingModel, fallback_order


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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v1"]  # no staging folder left


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
    assert "checksum" in serving.problem


def test_checks_are_throttled(tmp_path, booster):
    registry = Registry(tmp_path)
    registry.set_current(registry.publish(booster, _meta()))
    serving = ServingModel(registry, check_interval=3600)
    assert serving.get().version == "v1"
    registry.set_current(registry.publish(booster, _meta()))
    assert serving.get().version == "v1"  # not checked again within the interval


def _damage(path, how: str) -> bytes:
    """Truncate or alter a model file in place; its original bytes."""
    original = path.read_bytes()
    if how == "truncated":
        path.write_bytes(original[: len(original) // 2])
    else:  # same length, one digit changed
        at = original.index(b"leaf_value=") + len(b"leaf_value=") + 1
        digit = b"1" if original[at : at + 1] != b"1" else b"2"
        path.write_bytes(original[:at] + digit + original[at + 1 :])
    return original


@pytest.mark.parametrize("how", ["truncated", "altered"])
def test_a_fresh_process_serves_an_intact_version_and_heals_when_the_file_is_restored(
    tmp_path, booster, how, caplog
):
    registry = Registry(tmp_path)
    for _ in range(3):
        registry.set_current(registry.publish(booster, _meta()))
    registry.set_current("v2", action="rollback")
    registry.set_current("v3")  # served: v1, v2, v3 (v3 rolled back once, promoted again)
    original = _damage(tmp_path / "v3" / "model.txt", how)
    states = []
    serving = ServingModel(
        registry, check_interval=0.0, retry_interval=0.0, on_change=states.append
    )

    with caplog.at_level(logging.INFO, logger="fraudapp.ml.registry"):
        for _ in range(5):
            assert serving.get().version == "v2"  # the version served before v3
        state = serving.state()
        assert (state.serving, state.released, state.degraded) == ("v2", "v3", True)
        assert "v3" in state.problem and "checksum" in state.problem

        (tmp_path / "v3" / "model.txt").write_bytes(original)  # the pointer is not touched
        assert serving.get().version == "v3"
        assert serving.state().problem is None
        serving.get()

    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages  # one line when it degrades, one when it recovers
    assert "v3 cannot be served" in messages[0] and "serving v2 instead" in messages[0]
    assert "v3 loads again" in messages[1]
    assert [(s.serving, s.degraded) for s in states] == [("v2", True), ("v3", False)]


def test_a_running_process_keeps_its_version_when_the_next_one_is_damaged(tmp_path, booster):
    registry = Registry(tmp_path)
    registry.set_current(registry.publish(booster, _meta()))
    serving = ServingModel(registry, check_interval=0.0, retry_interval=0.0)
    assert serving.get().version == "v1"
    registry.set_current(registry.publish(booster, _meta()))
    original = _damage(tmp_path / "v2" / "model.txt", "truncated")
    os.utime(tmp_path / "CURRENT")  # a fresh stat stamp: the pointer is checked again
    assert serving.get().version == "v1"
    assert serving.state().released == "v2" and serving.state().degraded
    (tmp_path / "v2" / "model.txt").write_bytes(original)
    assert serving.get().version == "v2"


def test_retries_of_the_released_version_are_throttled(tmp_path, booster):
    registry = Registry(tmp_path)
    registry.set_current(registry.publish(booster, _meta()))
    registry.set_current(registry.publish(booster, _meta()))
    original = _damage(tmp_path / "v2" / "model.txt", "truncated")
    serving = ServingModel(registry, check_interval=0.0, retry_interval=0.3)
    assert serving.get().version == "v1"
    (tmp_path / "v2" / "model.txt").write_bytes(original)
    assert serving.get().version == "v1"  # not retried within the interval
    deadline = time.monotonic() + 10
    while serving.get().version != "v2" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert serving.get().version == "v2"  # retried after it, without a pointer change


def test_nothing_serves_when_no_version_loads_and_the_problem_is_kept(tmp_path, booster):
    registry = Registry(tmp_path)
    registry.set_current(registry.publish(booster, _meta()))
    original = _damage(tmp_path / "v1" / "model.txt", "truncated")
    serving = ServingModel(registry, check_interval=0.0, retry_interval=0.0)
    assert serving.get() is None
    state = serving.state()
    assert (state.serving, state.released) == (None, "v1") and "checksum" in state.problem
    (tmp_path / "v1" / "model.txt").write_bytes(original)
    assert serving.get().version == "v1" and not serving.state().degraded


def test_no_version_yet_is_not_a_problem(tmp_path):
    states = []
    state = ServingModel(Registry(tmp_path), check_interval=0.0, on_change=states.append).state()
    assert (state.serving, state.released, state.problem) == (None, None, None)
    assert states == [state]  # reported once, so a gauge starts at "not degraded"


def test_fallback_order_prefers_what_was_served_before():
    changes = [("v1", "promote"), ("v2", "promote"), ("v3", "promote"), ("v2", "rollback")]
    changes += [("v5", "promote")]
    versions = ["v1", "v2", "v3", "v4", "v5", "v6"]
    assert fallback_order(changes, versions, "v5") == ["v2", "v1", "v6", "v4", "v3"]
    assert fallback_order([], ["v1", "v2"], "v2") == ["v1"]
    assert fallback_order(changes, ["v5"], "v5") == []


@pytest.mark.parametrize("failing_write", [1, 2])  # the model file's, then the metadata's
def test_a_full_disk_leaves_no_version_behind(tmp_path, booster, monkeypatch, failing_write):
    registry = Registry(tmp_path)
    registry.set_current(registry.publish(booster, _meta()))
    real_fsync, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) == failing_write:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(RegistryError, match="No space left on device.*nothing was installed"):
        registry.publish(booster, _meta())
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["v1"]
    assert registry.versions() == ["v1"]
    assert registry.publish(booster, _meta()) == "v2"  # the next write works


def test_staging_folders_of_a_killed_process_are_ignored_then_cleaned_up(tmp_path, booster):
    registry = Registry(tmp_path)
    registry.set_current(registry.publish(booster, _meta()))
    old, fresh = tmp_path / ".staging-old", tmp_path / ".staging-fresh"
    for folder in (old, fresh):
        folder.mkdir()
        (folder / "model.txt").write_text("tree\n")
    stamp = time.time() - 2 * 3600
    os.utime(old, (stamp, stamp))
    assert registry.versions() == ["v1"]
    assert registry.publish(booster, _meta()) == "v2"
    assert not old.exists()
    assert fresh.exists()  # it may belong to a write in progress


def test_a_request_waits_for_the_first_load_another_thread_is_doing(tmp_path, booster):
    registry = Registry(tmp_path)
    registry.set_current(registry.publish(booster, _meta()))
    serving = ServingModel(registry, check_interval=60)
    real_load, started = registry.load, threading.Event()

    def slow_load(version):
        started.set()
        time.sleep(0.3)
        return real_load(version)

    registry.load = slow_load
    heartbeat = threading.Thread(target=serving.state)  # the node agent's thread
    heartbeat.start()
    assert started.wait(5)
    assert serving.get().version == "v1"  # not None while the other thread loads
    heartbeat.join()


OLDER = features.HANDBOOK_FEATURES + features.EXTRA_FEATURES  # a version trained before


def _booster_of(names):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, len(names)))
    y = (x[:, 0] + x[:, -1] + rng.normal(size=400) > 1).astype(int)
    data = lgb.Dataset(x, label=y, feature_name=list(names))
    return lgb.train({"objective": "binary", "verbosity": -1, "num_threads": 1}, data, 5)


def test_a_version_with_fewer_features_serves_on_its_own_columns(tmp_path):
    registry = Registry(tmp_path)
    booster = _booster_of(OLDER)
    registry.publish(booster, {**_meta(), "features": list(OLDER)})
    loaded = registry.load("v1")
    assert loaded.feature_names == OLDER
    rows = np.random.default_rng(2).normal(size=(50, len(features.FEATURES)))
    own = rows[:, [features.FEATURES.index(name) for name in OLDER]]
    np.testing.assert_array_equal(loaded.score_many(rows), booster.predict(own, num_threads=1))
    assert loaded.score(rows[0]) == pytest.approx(booster.predict(own[:1])[0], abs=1e-12)
    assert loaded.contributions(rows).shape == (50, len(OLDER) + 1)
    np.testing.assert_array_equal(loaded.own(rows), own)
    snapshot = dict(zip(OLDER, own[0].tolist(), strict=True))
    np.testing.assert_array_equal(loaded.own(loaded.full_row(snapshot)), own[0])


def test_a_version_of_this_codes_features_picks_no_columns(tmp_path, booster):
    registry = Registry(tmp_path)
    registry.publish(booster, _meta())
    rows = np.zeros((3, len(features.FEATURES)))
    assert registry.load("v1").own(rows) is rows  # the hot path copies nothing


@pytest.mark.parametrize(
    "names, message",
    [
        ([*OLDER, "NOT_A_FEATURE"], "unknown: NOT_A_FEATURE"),
        ([*OLDER, OLDER[0]], "feature list differs"),
        ([], "feature list differs"),
    ],
)
def test_a_feature_list_this_code_cannot_compute_is_refused(tmp_path, names, message):
    registry = Registry(tmp_path)
    trained = names if names and len(set(names)) == len(names) else OLDER
    registry.publish(_booster_of(trained), {**_meta(), "features": names})
    with pytest.raises(RegistryError, match=message):
        registry.load("v1")
