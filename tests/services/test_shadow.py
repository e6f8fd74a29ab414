"""Shadow challengers: the pointer, its refusals, scores stored beside the champion's (never
deciding), the comparison on shared transactions, the shadow promotion policy and the learning
panel."""

from __future__ import annotations

import datetime as dt

import lightgbm as lgb
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score
from sqlalchemy import select

from fraudapp.extensions import db
from fraudapp.ml import columns, features
from fraudapp.ml.metrics import card_precision_top_k
from fraudapp.ml.simulate import simulate
from fraudapp.models import AuditEvent, ModelRelease, Prediction, TrainingRun, Transaction
from fraudapp.services import serving
from fraudapp.services.distribution import releases
from fraudapp.services.monitoring import learning, shadow
from fraudapp.services.serving import registry
from fraudapp.services.training import runs
from fraudapp.services.transactions import files
from tests.conftest import predict

DAY = features.DAY
START_DAY = 17_800  # a transaction day number (2018-09-26)
# A version using some of the features: its columns are not a prefix of this code's
FEWER = tuple(name for name in features.FEATURES if name != "TX_DURING_WEEKEND")


def other_version(
    threshold: float = 0.3, seed: int = 0, names: tuple[str, ...] = features.FEATURES
) -> str:
    """A registry version whose scores differ from v1's: a small booster on random data with
    feature `names` (default: all of this code's), with v1's metadata and its own threshold."""
    reg = registry()
    names = list(names)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(400, len(names)))
    y = (x[:, 0] + rng.normal(size=400) > 1).astype(int)
    params = {"objective": "binary", "verbose": -1, "num_leaves": 4, "num_threads": 1}
    booster = lgb.train(params, lgb.Dataset(x, y, feature_name=names), 10)
    meta = {k: v for k, v in reg.meta("v1").items() if k not in ("sha256", "version")}
    return reg.install(
        booster.model_to_string(), meta | {"threshold": threshold, "features": names}
    )


def actions(action: str) -> list[AuditEvent]:
    """The audit events of one action."""
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


# -- the pointer --------------------------------------------------------------------------------


def test_shadow_pointer_start_stop_and_audit(app):
    releases.release("v1", "promote", "admin")
    v2 = other_version()
    assert releases.challenger() is None
    releases.start_shadow(v2, "admin")
    assert releases.challenger() == v2
    assert releases.current() == "v1" and releases.released() == "v1"  # the champion stays
    assert releases.previous() is None  # shadow rows are not releases
    assert [e.target for e in actions("model.shadowed")] == [v2]
    assert actions("model.shadowed")[0].details == {"champion": "v1"}
    releases.start_shadow(v2, "admin")  # again: nothing changes
    assert len(actions("model.shadowed")) == 1

    assert releases.stop_shadow("admin") == v2
    assert releases.challenger() is None
    assert [e.target for e in actions("model.unshadowed")] == [v2]
    with pytest.raises(releases.ReleaseError, match="no version is in shadow"):
        releases.stop_shadow("admin")


def test_shadowing_is_refused_for_the_champion_unknown_and_broken_versions(app):
    v2 = other_version()
    # before any release, the registry's pointer names the champion
    with pytest.raises(releases.ReleaseError, match="champion"):
        releases.start_shadow("v1", "admin")
    with pytest.raises(releases.ReleaseError, match="no such version"):
        releases.start_shadow("v99", "admin")
    with pytest.raises(releases.ReleaseError):
        releases.start_shadow("../etc", "admin")
    (registry().path(v2) / "model.txt").write_text("tree\nbroken")
    with pytest.raises(releases.ReleaseError, match="checksum"):
        releases.start_shadow(v2, "admin")
    assert releases.challenger() is None
    assert db.session.scalars(select(ModelRelease)).all() == []


def test_promoting_the_challenger_ends_its_shadow(app):
    v2 = other_version()
    runs.start_shadow(v2, "admin")  # the first shadow records the registry's history first
    assert releases.current() == "v1" and releases.challenger() == v2
    runs.promote(v2, "admin")
    assert releases.current() == v2 and releases.challenger() is None
    assert releases.previous() == "v1"


def test_the_run_of_a_shadowed_version_is_marked_and_unmarked(app):
    v2 = other_version()
    db.session.add(
        TrainingRun(
            reason="cli",
            requested_by="cli",
            status="succeeded",
            version=v2,
            promotion="awaiting approval",
        )
    )
    db.session.commit()
    runs.start_shadow(v2, "admin")
    assert db.session.scalar(select(TrainingRun.promotion)) == "shadowing"
    assert runs.stop_shadow("admin") == v2
    assert db.session.scalar(select(TrainingRun.promotion)) == "awaiting approval"
    with pytest.raises(runs.RunError):
        runs.start_shadow("v1", "admin")


# -- scoring ------------------------------------------------------------------------------------


def test_the_challenger_scores_beside_the_champion_and_never_decides(app, client, auth):
    plain = predict(client, auth, customer_id=7, amount=950.0)
    v2 = other_version(threshold=0.0001)  # it would flag everything
    releases.start_shadow(v2, "admin")
    body = predict(client, auth, customer_id=8, amount=950.0)
    assert set(body) == set(plain)  # nothing about the challenger in the answer
    assert body["model_version"] == "v1"

    stored = db.session.get(Prediction, body["id"])
    row = np.array([stored.features[name] for name in features.FEATURES])
    v1, challenger = registry().load("v1"), registry().load(v2)
    assert body["score"] == pytest.approx(v1.score(row))
    assert body["is_fraud"] == (v1.score(row) >= body["threshold"])
    assert stored.score == pytest.approx(v1.score(row))
    assert stored.challenger_version == v2
    assert stored.challenger_score == pytest.approx(challenger.score(row))
    assert stored.challenger_score != pytest.approx(stored.score)
    assert db.session.get(Prediction, plain["id"]).challenger_version is None

    releases.stop_shadow("admin")
    after = predict(client, auth, customer_id=9)
    assert db.session.get(Prediction, after["id"]).challenger_score is None


def test_a_challenger_that_cannot_load_never_fails_a_prediction(app, client, auth):
    v2 = other_version()
    releases.start_shadow(v2, "admin")
    (registry().path(v2) / "model.txt").write_text("damaged")
    app.extensions["fraudapp.model"]._versions.clear()
    app.extensions.pop("fraudapp.challenger", None)
    body = predict(client, auth, customer_id=5)
    assert body["model_version"] == "v1"
    assert db.session.get(Prediction, body["id"]).challenger_score is None
    version, problem = serving.challenger_state()
    assert version == v2 and "checksum" in problem
    health = client.get("/healthz").get_json()
    assert health["status"] == "ok" and health["challenger"] == v2
    assert "serving the champion alone" in health["challenger_problem"]


def test_a_batch_is_scored_by_the_challenger_in_one_call(app, client, auth, monkeypatch):
    v2 = other_version()
    releases.start_shadow(v2, "admin")
    challenger = serving.challenger_model()
    calls = []
    original = type(challenger).score_own  # every booster call of a version goes through it

    def counting(self, rows, threads=1):
        calls.append((self.version, len(rows)))
        return original(self, rows, threads)

    monkeypatch.setattr(type(challenger), "score_own", counting)
    items = [
        {
            "tx_datetime": "2018-05-20T10:00:00",
            "customer_id": c,
            "terminal_id": 3,
            "amount": 10.0,
            "consent": True,
        }
        for c in range(5)
    ]
    response = client.post("/api/v1/predictions", json={"transactions": items}, headers=auth)
    assert response.status_code == 201, response.get_json()
    assert calls == [("v1", 5), (v2, 5)]
    stored = db.session.scalars(select(Prediction)).all()
    assert len(stored) == 5 and all(p.challenger_version == v2 for p in stored)


def test_a_challenger_with_fewer_features_scores_its_own_columns(app, client, auth):
    older = FEWER
    v2 = other_version(names=older)
    releases.start_shadow(v2, "admin")
    body = predict(client, auth, customer_id=8, amount=950.0)
    stored = db.session.get(Prediction, body["id"])
    challenger = registry().load(v2)
    own = np.array([[stored.features[name] for name in older]])
    assert stored.challenger_version == v2
    assert stored.challenger_score == pytest.approx(challenger.booster.predict(own)[0])


def test_snapshots_become_rows_in_a_models_own_feature_order():
    matrix = columns.from_dicts([{"a": 1, "b": None}, {"b": 2.5}], ["b", "a"])
    assert np.isnan(matrix[0, 0]) and matrix[0, 1] == 1 and matrix[1, 0] == 2.5
    assert np.isnan(matrix[1, 1])


# -- the comparison and the policy ---------------------------------------------------------------


def _shared(champion: str, challenger: str | None, days: int, seed: int = 0, edge: float = 0.0):
    """Stored labelled predictions on `days` transaction days, scored by the champion and (unless
    None) the challenger; the challenger is better by `edge` (its scores less noisy)."""
    rng = np.random.default_rng(seed)
    data = []
    for day in range(days):
        for k in range(60):
            fraud = bool(rng.random() < 0.2)
            customer = int(rng.integers(0, 40))
            champ = float(np.clip(0.3 * fraud + rng.normal(0.35, 0.2), 0, 1))
            chall = float(np.clip(0.3 * fraud + rng.normal(0.35, 0.2 - edge), 0, 1))
            tx = Transaction(
                tx_time=(START_DAY + day) * DAY + 60 * k,
                customer_id=customer,
                terminal_id=1,
                amount=10.0,
                fraud=fraud,
                source="predict",
            )
            db.session.add(tx)
            db.session.flush()
            db.session.add(
                Prediction(
                    transaction_id=tx.id,
                    score=champ,
                    is_fraud=champ >= 0.5,
                    threshold=0.5,
                    model_version=champion,
                    features={},
                    challenger_version=challenger,
                    challenger_score=chall if challenger else None,
                )
            )
            data.append((START_DAY + day, customer, int(fraud), champ, chall))
    db.session.commit()
    return np.array(data)


def test_compare_matches_sklearn_on_a_constructed_set(app):
    v2 = other_version(threshold=0.45)
    data = _shared("v1", v2, days=3)
    # an unlabelled one and one scored by the champion alone do not count
    tx = Transaction(
        tx_time=START_DAY * DAY, customer_id=1, terminal_id=1, amount=1.0, source="predict"
    )
    db.session.add(tx)
    db.session.flush()
    db.session.add(
        Prediction(
            transaction_id=tx.id,
            score=0.9,
            is_fraud=True,
            threshold=0.5,
            model_version="v1",
            features={},
            challenger_version=v2,
            challenger_score=0.1,
        )
    )
    db.session.commit()

    result = shadow.compare("v1", v2)
    day, customer, label, champ, chall = data.T
    label = label.astype(int)
    v1_threshold = registry().meta("v1")["threshold"]
    assert (result["labels"], result["frauds"], result["days"]) == (180, label.sum(), 3)
    assert result["champion"]["threshold"] == v1_threshold
    assert result["challenger"]["threshold"] == 0.45
    for role, scores, threshold in (("champion", champ, v1_threshold), ("challenger", chall, 0.45)):
        figures = result[role]
        assert figures["ap"] == pytest.approx(average_precision_score(label, scores))
        assert figures["f1"] == pytest.approx(f1_score(label, scores >= threshold))
        assert figures["cp_at_100"] == pytest.approx(
            card_precision_top_k(day, customer, scores, label)
        )
    first = result["per_day"][0]
    mask = day == START_DAY
    assert first["day"] == "2018-09-26" and first["labels"] == 60
    assert first["challenger"]["ap"] == pytest.approx(
        average_precision_score(label[mask], chall[mask])
    )
    assert first["champion"]["cp_at_100"] == pytest.approx(
        card_precision_top_k(day[mask], customer[mask], champ[mask], label[mask])
    )


@pytest.mark.parametrize(
    ("days", "edge", "promoted"),
    [(1, 0.15, False), (2, 0.15, True), (2, -0.5, False)],
)
def test_review_shadow_promotes_after_enough_days_at_a_good_enough_ap(app, days, edge, promoted):
    app.config.update(PROMOTE_SHADOW_DAYS=2, PROMOTE_AP_MARGIN=0.01)
    v2 = other_version()
    runs.start_shadow(v2, "admin")
    _shared("v1", v2, days=days, edge=edge)
    outcome = runs.review_shadow()
    if promoted:
        assert outcome.startswith(f"promoted {v2}")
        assert releases.current() == v2 and releases.challenger() is None
        event = actions("model.promoted")[-1]
        assert event.actor == "trainer" and event.details["shadow_days"] == 2
    else:
        assert outcome.startswith(f"{v2} stays in shadow")
        assert releases.current() == "v1" and releases.challenger() == v2


def test_review_shadow_does_nothing_when_off_or_without_a_challenger(app):
    assert runs.review_shadow() is None
    app.config["PROMOTE_SHADOW_DAYS"] = 1
    assert runs.review_shadow() is None


def test_with_shadow_days_the_policy_shadows_instead_of_promoting(app):
    app.config.update(PROMOTE_SHADOW_DAYS=3, PROMOTE_MIN_LABELS=10)
    v2 = other_version()
    run = TrainingRun(
        reason="cli",
        requested_by="cli",
        status="running",
        version=v2,
        labels={"labelled": 50, "frauds": 3},
        champion_version="v1",
        candidate_metrics={"ap": 0.7},
        champion_metrics={"ap": 0.7},
    )
    db.session.add(run)
    db.session.commit()
    assert runs._apply_policy(run) == "shadowing"
    assert releases.current() == "v1" and releases.challenger() == v2


def test_flask_models_shadow_unshadow_and_list(app, runner):
    v2 = other_version()
    result = runner.invoke(args=["models", "shadow", "v1"])
    assert result.exit_code == 1 and "champion" in result.output
    result = runner.invoke(args=["models", "shadow", v2])
    assert result.exit_code == 0 and f"{v2} is in shadow of v1" in result.output
    listed = runner.invoke(args=["models", "list"]).output.splitlines()
    assert listed[0].startswith("* v1") and listed[1].startswith(f"~ {v2}")
    result = runner.invoke(args=["models", "unshadow"])
    assert result.exit_code == 0 and f"{v2} is no longer in shadow" in result.output
    assert runner.invoke(args=["models", "unshadow"]).exit_code == 1


# -- the learning panel ----------------------------------------------------------------------


def test_the_learning_panel_rescores_the_first_week_with_the_replaced_version(app, client, auth):
    releases.release("v1", "promote", "admin")
    v2 = other_version(threshold=0.4)
    releases.release(v2, "promote", "admin")
    start = dt.datetime(2018, 5, 20, 10)
    ids = []
    for k in range(40):  # days 0..9 of its service; only the first 7 count
        body = predict(
            client,
            auth,
            tx_datetime=(start + dt.timedelta(hours=6 * k)).isoformat(),
            customer_id=k % 13,
            terminal_id=k % 5,
            amount=10.0 + 37 * (k % 7),
        )
        ids.append(body["id"])
    for k, prediction_id in enumerate(ids):
        transaction = db.session.get(Prediction, prediction_id).transaction
        if k % 4 != 3:  # a few stay unlabelled
            transaction.fraud = k % 3 == 0
    db.session.commit()

    rows = learning.refresh()
    assert [(row.version, row.replaced) for row in rows] == [(v2, "v1")]
    got = rows[0].figures
    first_week = [db.session.get(Prediction, i) for k, i in enumerate(ids) if k % 4 != 3 and k < 28]
    label = np.array([p.transaction.fraud for p in first_week], dtype=int)
    snapshots = np.array([[p.features[n] for n in features.FEATURES] for p in first_week])
    mine = np.array([p.score for p in first_week])
    theirs = registry().load("v1").score_many(snapshots)
    assert (got["labels"], got["frauds"]) == (len(label), label.sum())
    assert got["first_day"] == "2018-05-20"
    assert got["version"]["ap"] == pytest.approx(average_precision_score(label, mine))
    assert got["replaced"]["ap"] == pytest.approx(average_precision_score(label, theirs))
    assert got["replaced"]["f1"] == pytest.approx(
        f1_score(label, theirs >= registry().meta("v1")["threshold"])
    )
    assert got["version"]["f1"] == pytest.approx(f1_score(label, mine >= 0.4))
    assert learning.refresh()[0].figures == got  # recomputed in place


def test_flask_monitor_refreshes_the_panel_and_applies_the_shadow_policy(app, runner):
    app.config.update(PROMOTE_SHADOW_DAYS=1, PROMOTE_AP_MARGIN=0.01)
    v2 = other_version()
    runs.start_shadow(v2, "admin")
    _shared("v1", v2, days=1, edge=0.15)
    result = runner.invoke(args=["monitor", "--as-of", "2018-09-27"])
    assert f"shadow: promoted {v2}" in result.output
    assert releases.current() == v2
    assert [row.version for row in learning.panel()] == [v2]


def test_the_trainer_loop_applies_the_shadow_policy(app, runner):
    app.config.update(PROMOTE_SHADOW_DAYS=1, PROMOTE_AP_MARGIN=0.01, TRAINER_NICE=0)
    v2 = other_version()
    runs.start_shadow(v2, "admin")
    _shared("v1", v2, days=1, edge=0.15)
    result = runner.invoke(args=["trainer", "--once"])
    assert result.exit_code == 0, result.output
    assert f"shadow: promoted {v2}" in result.output
    assert releases.current() == v2


def test_a_new_challenger_replaces_the_one_in_shadow_and_its_run_awaits_approval(app):
    v2, v3 = other_version(), other_version(seed=1)
    for version in (v2, v3):
        db.session.add(
            TrainingRun(reason="cli", requested_by="cli", status="succeeded", version=version)
        )
    db.session.commit()
    runs.start_shadow(v2, "admin")
    runs.start_shadow(v3, "admin")
    assert releases.challenger() == v3
    promotions = dict(db.session.execute(select(TrainingRun.version, TrainingRun.promotion)).all())
    assert promotions == {v2: "awaiting approval", v3: "shadowing"}


def test_the_learning_panel_rescores_with_a_replaced_version_of_fewer_features(app, client, auth):
    older = FEWER
    replaced = other_version(names=older)
    releases.release(replaced, "promote", "admin")
    version = other_version(threshold=0.4, seed=1)
    releases.release(version, "promote", "admin")
    start = dt.datetime(2018, 5, 20, 10)
    served = [
        predict(
            client,
            auth,
            tx_datetime=(start + dt.timedelta(hours=5 * k)).isoformat(),
            customer_id=k % 11,
            terminal_id=k % 4,
            amount=12.0 + 41 * (k % 6),
        )["id"]
        for k in range(24)
    ]
    stored = [db.session.get(Prediction, i) for i in served]
    for k, prediction in enumerate(stored):
        prediction.transaction.fraud = k % 3 == 0
    db.session.commit()

    row = next(r for r in learning.refresh() if r.version == version)
    assert row.replaced == replaced
    label = np.array([p.transaction.fraud for p in stored], dtype=int)
    own = np.array([[p.features[name] for name in older] for p in stored])
    theirs = registry().load(replaced).booster.predict(own)
    assert row.figures["replaced"]["ap"] == pytest.approx(average_precision_score(label, theirs))


def test_a_stored_file_is_scored_by_the_challenger_too(app, tmp_path):
    challenger = other_version(names=FEWER)
    releases.start_shadow(challenger, "admin")
    frame = simulate(
        n_customers=40, n_terminals=80, start_date="2018-05-16", n_days=3, random_state=5
    )
    frame["TRANSACTION_ID"] = [f"file-{i}" for i in range(len(frame))]
    source = tmp_path / "in.csv"
    frame.to_csv(source, index=False)
    files.score_file(source, tmp_path / "out.csv", store=True)

    stored = db.session.scalars(select(Prediction).order_by(Prediction.id)).all()
    assert len(stored) == len(frame) > 50
    assert {p.challenger_version for p in stored} == {challenger}
    own = np.array([[p.features[name] for name in FEWER] for p in stored])
    expected = registry().load(challenger).booster.predict(own)
    np.testing.assert_allclose([p.challenger_score for p in stored], expected, atol=1e-6)
