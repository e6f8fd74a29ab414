"""Training runs: queue, claim, execute, policy, cancel, stale runs, trainer, admin pages."""

import contextlib
import datetime as dt
import shutil
import threading
import time

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from fraudapp.extensions import db
from fraudapp.i18n import shown
from fraudapp.ml.metrics import evaluate
from fraudapp.ml.training import Windows, predict, split
from fraudapp.models import AuditEvent, TrainingRun, Transaction, utcnow
from fraudapp.services.serving import registry
from fraudapp.services.training import runs
from fraudapp.services.transactions.history import load_history
from tests.conftest import login


@pytest.fixture
def small(app, monkeypatch):
    """A quick retraining set-up on the small simulated history (one LightGBM thread: on a busy
    machine, training on every core is several times slower)."""
    app.config.update(
        RETRAIN_TRAIN_DAYS=7, RETRAIN_WINDOW_CHOICES=[], PROMOTE_MIN_LABELS=10, TRAINER_NICE=0
    )
    monkeypatch.setenv("FRAUDAPP_TRAINING_THREADS", "1")
    return app


def test_a_run_chooses_its_training_window_and_parameters_and_shows_them(
    small, stored_history, client, users
):
    small.config.update(
        RETRAIN_WINDOW_CHOICES=[5, 10],
        RETRAIN_PARAM_VARIANTS={"default": {}, "tiny": {"num_leaves": 2}},
        TRAINING_PARAMS={"num_boost_round": 40},
    )
    runs.request_run("admin", "admin")
    run = runs.execute(runs.claim("test:1"))
    assert run.status == "succeeded", run.error
    trials = run.params["trials"]
    assert [(t["train_days"], t["variant"]) for t in trials] == [
        (5, "default"),
        (5, "tiny"),
        (10, "default"),
        (10, "tiny"),
    ]
    best = max(trials, key=lambda t: t["validation_ap"])
    assert (run.params["train_days"], run.params["variant"]) == (
        best["train_days"],
        best["variant"],
    )
    # the run's (and the version's) training window has the kept length, on the usual test window
    start = dt.date.fromisoformat(run.windows["train_start"])
    assert (dt.date.fromisoformat(run.windows["train_end"]) - start).days + 1 == best["train_days"]
    assert registry().meta(run.version)["windows"] == run.windows
    assert run.labels["labelled"] == run.train_rows
    # the champion is scored on the candidate's test rows, at its own threshold
    history = load_history()
    _, rows = split(history, Windows(start, best["train_days"], 7, 7))
    champion = registry().load("v1")
    expected = evaluate(
        predict(champion.booster, history.features()[rows]),
        (history.label[rows] == 1).astype(int),
        history.day[rows],
        history.customer[rows],
        champion.threshold,
    )
    assert run.champion_metrics == pytest.approx(expected)

    login(client, "admin")
    page = client.get(f"/admin/runs/{run.id}").text
    table = page[page.index('id="run-trials"') :]
    assert "kept" in table and f"{best['validation_ap']:.4f}" in table
    assert table.count("<tr") == 5


def _copy_of_v1() -> str:
    """A second registry version without training: v1's model under the next number."""
    reg = registry()
    meta = {k: v for k, v in reg.meta("v1").items() if k not in ("sha256", "version")}
    return reg.install((reg.path("v1") / "model.txt").read_text(), meta)


def _actions(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_a_run_trains_and_compares_candidate_and_champion_on_the_same_window(small, stored_history):
    small.config["PROMOTE_AP_MARGIN"] = -1  # the candidate would need AP ≥ champion + 1: never
    run = runs.request_run("admin", "admin")
    assert (run.status, run.reason, run.requested_by) == ("queued", "admin", "admin")
    claimed = runs.claim("test:1")
    assert claimed.id == run.id and claimed.status == "running" and claimed.worker == "test:1"
    run = runs.execute(claimed)

    assert run.status == "succeeded", run.error
    assert run.progress == "done" and run.finished_at is not None
    reg = registry()
    assert run.version in reg.versions() and run.version != "v1"
    assert run.champion_version == "v1"
    assert run.promotion == "awaiting approval" and reg.current() == "v1"
    assert not _actions("model.promoted")
    keys = {"auc", "ap", "cp_at_100", "precision", "recall", "f1", "threshold"}
    assert keys <= set(run.candidate_metrics) and keys <= set(run.champion_metrics)
    assert run.labels["labelled"] == run.train_rows > 0 and run.labels["frauds"] > 0

    # The candidate's metrics are the published version's test metrics, on the run's window ...
    meta = reg.meta(run.version)
    assert meta["windows"] == run.windows and meta["metrics"] == run.candidate_metrics
    start = dt.date.fromisoformat(run.windows["train_start"])
    assert (dt.date.fromisoformat(run.windows["train_end"]) - start).days + 1 == 7
    # ... and the champion's are v1 scored on exactly those rows at its own threshold.
    history = load_history()
    _, rows = split(history, Windows(start, 7, 7, 7))
    champion = reg.load("v1")
    expected = evaluate(
        predict(champion.booster, history.features()[rows]),
        (history.label[rows] == 1).astype(int),
        history.day[rows],
        history.customer[rows],
        champion.threshold,
    )
    assert run.champion_metrics == pytest.approx(expected)


def test_the_policy_promotes_when_the_candidate_is_good_enough(small, stored_history):
    small.config["PROMOTE_AP_MARGIN"] = 1.0  # AP ≥ champion − 1 always holds
    runs.request_run("cli", "cli")
    run = runs.execute(runs.claim("test:1"))
    assert run.status == "succeeded", run.error
    assert run.promotion == "promoted" and registry().current() == run.version
    event = _actions("model.promoted")[0]
    assert event.actor == "trainer" and event.target == run.version
    assert event.details["candidate_ap"] == run.candidate_metrics["ap"]


@pytest.mark.parametrize(
    ("candidate", "champion", "labelled", "promoted"),
    [
        (0.70, 0.705, 50, True),  # within the margin
        (0.70, 0.72, 50, False),  # worse than the champion by more than the margin
        (0.70, None, 50, True),  # no champion to beat
        (0.90, 0.50, 5, False),  # better, but too few labels
        (None, 0.50, 50, False),  # no candidate AP
    ],
)
def test_the_policy_boundaries(small, candidate, champion, labelled, promoted):
    small.config["PROMOTE_AP_MARGIN"] = 0.01
    version = _copy_of_v1()
    run = TrainingRun(
        reason="cli",
        requested_by="cli",
        status="running",
        version=version,
        labels={"labelled": labelled, "frauds": 3},
        candidate_metrics={"ap": candidate},
        champion_metrics={"ap": champion} if champion is not None else None,
    )
    db.session.add(run)
    db.session.commit()
    assert runs._apply_policy(run) == ("promoted" if promoted else "awaiting approval")
    assert registry().current() == (version if promoted else "v1")


def test_flask_retrain_twice_gives_the_same_queued_run(runner):
    first = runner.invoke(args=["retrain"])
    second = runner.invoke(args=["retrain"])
    assert first.exit_code == second.exit_code == 0
    run = db.session.scalar(select(TrainingRun))
    assert first.output == second.output == f"run {run.id} is queued\n"
    assert db.session.scalar(select(db.func.count()).select_from(TrainingRun)) == 1
    assert len(_actions("retrain.requested")) == 1


def test_flask_trainer_once_works_a_queued_run_and_exits(small, stored_history, runner):
    assert runner.invoke(args=["trainer", "--once"]).output.endswith("0 run(s) done\n")
    runner.invoke(args=["retrain"])
    result = runner.invoke(args=["trainer", "--once"])
    assert result.exit_code == 0, result.output
    run = db.session.scalar(select(TrainingRun))
    db.session.refresh(run)
    assert run.status == "succeeded" and run.version in registry().versions()
    assert f"run {run.id}: started (cli, asked by cli)" in result.output
    assert f"run {run.id}: succeeded, version {run.version}" in result.output
    assert result.output.endswith("1 run(s) done\n")


def _running(heartbeat_age: float) -> TrainingRun:
    """A running run whose last heartbeat is `heartbeat_age` seconds old."""
    now = utcnow()
    run = TrainingRun(
        reason="cli",
        requested_by="cli",
        status="running",
        worker="gone:1",
        started_at=now - dt.timedelta(minutes=30),
        heartbeat_at=now - dt.timedelta(seconds=heartbeat_age),
    )
    db.session.add(run)
    db.session.commit()
    return run


def test_a_stale_running_run_is_marked_failed(app):
    stale = _running(600)
    heard = f"{stale.heartbeat_at:%H:%M:%S}"
    assert runs.fail_stale(120) == 1
    db.session.refresh(stale)
    assert stale.status == "failed" and stale.finished_at
    assert shown(stale.error) == (
        f"the trainer stopped sending heartbeats at {heard} UTC (it died or lost the database)"
    )
    alive = _running(0)
    assert runs.fail_stale(120) == 0
    db.session.refresh(alive)
    assert alive.status == "running"


def test_the_default_stale_limit_is_a_few_heartbeats(app):
    # A trainer beats every TRAINER_HEARTBEAT_SECONDS; half a minute of silence means it is gone.
    beat, limit = app.config["TRAINER_HEARTBEAT_SECONDS"], app.config["TRAINER_STALE_SECONDS"]
    assert 2 * beat < limit < 30
    run = _running(30)
    runs.request_run("cli", "cli")
    db.session.refresh(run)
    assert run.status == "failed"


def test_the_database_holds_one_active_run_at_most(app):
    db.session.add_all(
        [TrainingRun(reason="cli", requested_by="cli", status=s) for s in ("failed",) * 2]
        + [TrainingRun(reason="cli", requested_by="cli", status="succeeded")]
        + [TrainingRun(reason="cli", requested_by="cli", status="queued")]
    )
    db.session.commit()
    for status in ("queued", "running"):
        db.session.add(TrainingRun(reason="cli", requested_by="cli", status=status))
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()
    assert db.session.scalar(select(db.func.count()).select_from(TrainingRun)) == 4


def _all_check_then_all_insert(parties: int):
    """Hold every INSERT of a training run until `parties` threads reach one: each has checked
    for an active run (and found none) before any inserts — the race of simultaneous clicks."""
    barrier = threading.Barrier(parties)

    def hold(_conn, _cursor, statement, *_args) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO TRAINING_RUNS"):
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=10)

    return hold


@pytest.mark.parametrize("via", ["request_run", "button"])
def test_simultaneous_requests_queue_one_run(app, users, via):
    parties = 4
    hold = _all_check_then_all_insert(parties)
    got: list = []
    errors: list = []

    def request() -> None:
        with app.app_context():
            try:
                if via == "request_run":
                    got.append(runs.request_run("admin", "admin").id)
                else:
                    client = app.test_client()
                    login(client, "admin")
                    response = client.post("/admin/runs")
                    assert response.status_code == 302, response.status_code
                    got.append(int(response.location.rsplit("/", 1)[1]))
            except Exception as exc:  # noqa: BLE001 — reported below
                errors.append(exc)
            finally:
                db.session.remove()

    event.listen(db.engine, "before_cursor_execute", hold)
    try:
        threads = [threading.Thread(target=request) for _ in range(parties)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        event.remove(db.engine, "before_cursor_execute", hold)
    assert not errors, errors
    assert len(got) == parties and len(set(got)) == 1
    assert db.session.scalar(select(db.func.count()).select_from(TrainingRun)) == 1
    assert db.session.scalar(select(TrainingRun.id)) == got[0]
    assert len(_actions("retrain.requested")) == 1


def test_a_stale_run_is_failed_when_an_admin_opens_the_runs_page(client, users):
    login(client, "admin")
    run = _running(600)
    heard = f"{run.heartbeat_at:%H:%M:%S}"
    page = client.get("/admin/runs")
    assert page.status_code == 200
    db.session.refresh(run)
    assert run.status == "failed" and run.finished_at
    page = client.get(f"/admin/runs/{run.id}").text
    assert 'id="run-error"' in page and f"stopped sending heartbeats at {heard} UTC" in page


def test_its_page_shows_a_dead_trainer_run_failed(client, users):
    login(client, "admin")
    run = _running(600)
    body = client.get(f"/admin/runs/{run.id}.json").get_json()
    assert body["status"] == "failed" and body["active"] is False
    assert body["error"].startswith("the trainer stopped sending heartbeats at ")


def test_retrain_now_fails_a_stale_run_and_queues_a_new_one(client, users):
    login(client, "admin")
    stale = _running(600)
    response = client.post("/admin/runs")
    new = db.session.scalar(select(TrainingRun).where(TrainingRun.id != stale.id))
    assert new is not None and (new.status, new.reason) == ("queued", "admin")
    assert response.location.endswith(f"/admin/runs/{new.id}")
    assert f"Training run {new.id} is queued" in client.get(response.location).text
    db.session.refresh(stale)
    assert stale.status == "failed" and "stopped sending heartbeats" in stale.error
    # a live run is left alone: the button shows it
    runs.claim("test:1")
    page = client.post("/admin/runs", follow_redirects=True).text
    assert f"Training run {new.id} is already running" in page


def test_a_run_failed_meanwhile_publishes_nothing(small, stored_history, monkeypatch):
    versions_before = registry().versions()
    runs.request_run("admin", "admin")
    run = runs.claim("test:1")

    def train_while_taken_for_dead(history, windows):
        # Its heartbeats were late: another process failed the run while it trained.
        with db.engine.begin() as connection:
            connection.execute(
                update(TrainingRun)
                .where(TrainingRun.id == run.id)
                .values(status="failed", error="the trainer stopped sending heartbeats")
            )
        return None, None  # never used: the run stops at its next step

    monkeypatch.setattr(runs, "choose_and_train", train_while_taken_for_dead)
    run = runs.execute(run)
    assert run.status == "failed" and run.error == "the trainer stopped sending heartbeats"
    assert run.version is None
    assert registry().versions() == versions_before and registry().current() == "v1"


def test_a_heartbeat_that_fails_once_keeps_beating(app, monkeypatch, caplog):
    run = _running(600)
    app.config["TRAINER_HEARTBEAT_SECONDS"] = 0.05
    real_update, calls = runs.update, []

    def flaky_update(*args):
        calls.append(args)
        if len(calls) == 1:
            raise OperationalError("UPDATE", {}, Exception("connection lost"))
        return real_update(*args)

    monkeypatch.setattr(runs, "update", flaky_update)
    stop = threading.Event()
    beat = threading.Thread(target=runs._heartbeat, args=(app, run.id, stop))
    beat.start()
    deadline = time.monotonic() + 10
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    beat.join()
    assert len(calls) >= 3
    db.session.refresh(run)
    assert run.heartbeat_at > utcnow() - dt.timedelta(seconds=10)
    assert f"run {run.id}: heartbeat not saved" in caplog.text


def test_cancelling_a_queued_run(app):
    run = runs.request_run("cli", "cli")
    runs.cancel(run.id, "admin")
    assert run.status == "cancelled" and run.finished_at is not None
    assert runs.claim("test:1") is None
    with pytest.raises(runs.RunError, match="nothing to cancel"):
        runs.cancel(run.id, "admin")
    with pytest.raises(runs.RunError, match="no run 999"):
        runs.cancel(999, "admin")
    assert [e.actor for e in _actions("retrain.cancelled")] == ["admin"]
    assert runs.request_run("cli", "cli").id != run.id  # a cancelled run is not reused


def test_a_cancel_requested_while_training_ends_cancelled_and_publishes_nothing(
    small, stored_history, monkeypatch
):
    versions_before = registry().versions()
    runs.request_run("admin", "admin")
    run = runs.claim("test:1")

    def train_while_an_admin_cancels(history, windows):
        # Another process (the web app) asks the run to stop while the trainer is busy.
        with db.engine.begin() as connection:
            connection.execute(
                update(TrainingRun).where(TrainingRun.id == run.id).values(cancel_requested=True)
            )
        return None, None  # never used: the run stops at its next step

    monkeypatch.setattr(runs, "choose_and_train", train_while_an_admin_cancels)
    run = runs.execute(run)
    assert run.status == "cancelled" and run.progress == "cancelled", run.error
    assert run.version is None and run.finished_at is not None
    assert registry().versions() == versions_before and registry().current() == "v1"


def test_cancel_of_a_running_run_asks_it_to_stop(small, stored_history):
    runs.request_run("admin", "admin")
    run = runs.claim("test:1")
    runs.cancel(run.id, "admin")
    assert run.status == "running" and run.cancel_requested
    run = runs.execute(run)
    assert run.status == "cancelled" and run.version is None
    assert registry().versions() == ["v1"]


def test_two_claims_never_return_the_same_run(app):
    run = runs.request_run("cli", "cli")
    assert runs.claim("a").id == run.id
    assert runs.claim("b") is None


def test_concurrent_claims_take_the_queued_run_once(app):
    runs.request_run("cli", "cli")
    barrier = threading.Barrier(4)
    taken: list = []

    def trainer(name: str) -> None:
        with app.app_context():
            barrier.wait()
            run = runs.claim(name)
            taken.append(run.id if run else None)
            db.session.remove()

    threads = [threading.Thread(target=trainer, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [i for i in taken if i is not None]
    assert len(ids) == 1
    rows = db.session.scalars(select(TrainingRun).where(TrainingRun.status == "running")).all()
    assert sorted(r.id for r in rows) == sorted(ids)
    assert len({r.worker for r in rows}) == len(rows)


def test_the_runs_page_and_its_buttons(app, client, users):
    login(client, "admin")
    v2 = _copy_of_v1()
    page = client.get("/admin/runs")
    assert page.status_code == 200
    for marker in (
        'id="runs"',
        'id="versions"',
        "Retrain now",
        "Roll back",
        "No training run yet",
        'id="serving-version">v1<',
        f"/admin/models/{v2}/promote",
    ):
        assert marker in page.text
    assert "/admin/models/v1/promote" not in page.text  # the serving version has no button
    assert "Schedule: <strong>off</strong>" in page.text
    assert "On alert: <strong>off</strong>" in page.text
    assert 'href="/admin/runs">Training runs</a>' in page.text  # the admin nav
    dashboard, _, _ = app.jinja_loader.get_source(app.jinja_env, "admin/dashboard.html")
    assert "url_for('admin.training_runs')" in dashboard

    # Nothing served before v1: a clear message, not an error page.
    page = client.post("/admin/models/rollback", follow_redirects=True)
    assert page.status_code == 200 and "Cannot roll back: no earlier version" in page.text
    assert registry().current() == "v1"

    page = client.post(f"/admin/models/{v2}/promote", follow_redirects=True)
    assert page.status_code == 200 and f"{v2} is now serving" in page.text
    assert registry().current() == v2
    assert [(e.actor, e.target) for e in _actions("model.promoted")] == [("admin", v2)]

    page = client.post("/admin/models/rollback", follow_redirects=True)
    assert "Rolled back: v1 is now serving" in page.text and registry().current() == "v1"
    assert [(e.actor, e.target) for e in _actions("model.rolled_back")] == [("admin", "v1")]

    for bad in ("v99", "latest"):
        page = client.post(f"/admin/models/{bad}/promote", follow_redirects=True)
        assert page.status_code == 200
        assert f"Cannot promote {bad}: there is no such version" in page.text
    (registry().path(v2) / "model.txt").write_text("tampered")
    page = client.post(f"/admin/models/{v2}/promote", follow_redirects=True)
    assert page.status_code == 200 and "checksum mismatch" in page.text
    assert registry().current() == "v1"

    response = client.post("/admin/runs")
    run = db.session.scalar(select(TrainingRun))
    assert response.status_code == 302 and response.location.endswith(f"/admin/runs/{run.id}")
    assert (run.reason, run.requested_by, run.status) == ("admin", "admin", "queued")
    assert f"Training run {run.id} is queued" in client.get(response.location).text
    assert "is already" not in client.get("/admin/runs").text
    again = client.post("/admin/runs", follow_redirects=True).text
    assert f"Training run {run.id} is queued" in again
    assert db.session.scalar(select(db.func.count()).select_from(TrainingRun)) == 1


def test_the_run_page_polls_and_cancels(client, users, app):
    login(client, "admin")
    client.post("/admin/runs")
    run_id = db.session.scalar(select(TrainingRun.id))
    url = f"/admin/runs/{run_id}"
    page = client.get(url)
    assert page.status_code == 200
    for marker in (
        'data-active="true"',
        f'data-poll-url="{url}.json"',
        "runs.js",
        'id="run-status"',
        'id="run-progress"',
        "waiting for a trainer",
        "Cancel",
    ):
        assert marker in page.text
    with client.get("/static/runs.js") as script:
        assert script.status_code == 200 and b"data-poll-url" in script.data

    body = client.get(f"{url}.json").get_json()
    assert body["id"] == run_id and body["status"] == "queued" and body["active"] is True
    assert body["progress"] == "waiting for a trainer" and body["version"] is None

    page = client.post(f"{url}/cancel", follow_redirects=True)
    assert f"Training run {run_id} is cancelled" in page.text
    assert 'data-active="false"' in page.text
    body = client.get(f"{url}.json").get_json()
    assert body["status"] == "cancelled" and body["active"] is False and body["finished_at"]

    page = client.post(f"{url}/cancel", follow_redirects=True)
    assert page.status_code == 200 and f"Cannot cancel: run {run_id} is cancelled" in page.text
    missing = run_id + 1000
    page = client.post(f"/admin/runs/{missing}/cancel", follow_redirects=True)
    assert page.status_code == 200 and f"Cannot cancel: no run {missing}" in page.text
    assert client.get(f"/admin/runs/{missing}").status_code == 404
    assert client.get(f"/admin/runs/{missing}.json").status_code == 404


def test_a_running_run_can_be_asked_to_stop_from_its_page(client, users):
    login(client, "admin")
    runs.request_run("cli", "cli")
    run = runs.claim("test:1")
    page = client.post(f"/admin/runs/{run.id}/cancel", follow_redirects=True)
    assert "will stop at its next step" in page.text and "Cancelling" in page.text
    body = client.get(f"/admin/runs/{run.id}.json").get_json()
    assert body["status"] == "running" and body["cancel_requested"] is True
    assert body["progress"] == "cancelling" and body["heartbeat_at"]


def test_a_finished_run_shows_both_models_and_can_be_promoted(client, users):
    login(client, "admin")
    version = _copy_of_v1()
    metrics = {
        "auc": 0.9,
        "ap": 0.61,
        "cp_at_100": 0.2,
        "precision": 0.7,
        "recall": 0.5,
        "f1": 0.58,
        "threshold": 0.3,
    }
    run = TrainingRun(
        reason="schedule",
        requested_by="schedule",
        status="succeeded",
        progress="done",
        windows={
            "train_start": "2018-04-17",
            "train_end": "2018-04-23",
            "test_start": "2018-05-01",
            "test_end": "2018-05-07",
        },
        train_rows=8000,
        labels={"labelled": 8000, "frauds": 60},
        candidate_metrics=metrics,
        champion_version="v1",
        champion_metrics=metrics | {"ap": 0.65},
        version=version,
        promotion="awaiting approval",
    )
    db.session.add(run)
    db.session.commit()

    listing = client.get("/admin/runs").text
    assert "0.610 vs 0.650 (v1)" in listing and "awaiting approval" in listing
    page = client.get(f"/admin/runs/{run.id}").text
    for marker in (
        'id="run-metrics"',
        "0.6100",
        "0.6500",
        "-0.0400",
        "2018-05-01 – 2018-05-07",
        "8,000 labelled, 60 frauds",
        f"Promote {version}",
        'data-active="false"',
    ):
        assert marker in page, marker
    assert 'id="cancel-form"' not in page

    page = client.post(f"/admin/models/{version}/promote", follow_redirects=True)
    assert f"{version} is now serving" in page.text
    db.session.refresh(run)
    assert run.promotion == "promoted" and registry().current() == version
    assert f"Promote {version}" not in client.get(f"/admin/runs/{run.id}").text


def test_a_failed_run_shows_its_error(client, users, app):
    login(client, "admin")
    shutil.rmtree(app.config["MODEL_DIR"])  # nothing registered, and no history either
    runs.request_run("cli", "cli")
    run = runs.execute(runs.claim("test:1"))
    assert run.status == "failed" and "no labelled transactions" in run.error
    page = client.get(f"/admin/runs/{run.id}").text
    assert 'id="run-error"' in page and "no labelled transactions" in page
    assert "The registry is empty" in client.get("/admin/runs").text


def test_runs_pages_are_for_admins_only(client, users):
    run = runs.request_run("cli", "cli")
    assert client.get("/admin/runs").status_code == 302
    login(client, "analyst")
    for url in ("/admin/runs", f"/admin/runs/{run.id}", f"/admin/runs/{run.id}.json"):
        assert client.get(url).status_code == 403, url
    for url in (
        "/admin/runs",
        f"/admin/runs/{run.id}/cancel",
        "/admin/models/v1/promote",
        "/admin/models/rollback",
    ):
        assert client.post(url).status_code == 403, url
    assert db.session.scalar(select(TrainingRun.status)) == "queued"
    assert not _actions("model.promoted") and not _actions("retrain.cancelled")


def test_buttons_need_the_csrf_token(app, client, users):
    login(client, "admin")
    app.config["WTF_CSRF_ENABLED"] = True
    assert client.post("/admin/runs").status_code == 400
    assert client.post("/admin/models/rollback").status_code == 400
    assert db.session.scalar(select(db.func.count()).select_from(TrainingRun)) == 0


def test_a_validation_window_without_fraud_still_ends_the_run(small, stored_history, client, users):
    last_day = db.session.scalar(select(db.func.max(Transaction.tx_time))) // 86400
    db.session.execute(
        update(Transaction).where(Transaction.tx_time >= (last_day - 6) * 86400).values(fraud=False)
    )
    db.session.commit()
    runs.request_run("cli", "cli")
    run = runs.execute(runs.claim("test:1"))
    assert run.status == "succeeded", run.error
    assert run.candidate_metrics["ap"] is None and run.champion_metrics["ap"] is None
    assert run.promotion == "awaiting approval" and registry().current() == "v1"
    login(client, "admin")
    assert client.get(f"/admin/runs/{run.id}").status_code == 200
    assert client.get("/admin/runs").status_code == 200


def test_run_ids_no_row_can_have_are_404(client, users):
    login(client, "admin")
    for ident in ("99999999999999999999", "9223372036854775808", "9" * 5000):
        assert client.get(f"/admin/runs/{ident}").status_code == 404
        assert client.get(f"/admin/runs/{ident}.json").status_code == 404
        assert client.post(f"/admin/runs/{ident}/cancel").status_code == 404
        assert client.post(f"/admin/nodes/{ident}/remove").status_code == 404


def test_a_labelled_row_dated_in_the_future_does_not_move_the_training_windows(stored_history):
    from fraudapp.services.training.train import latest_windows
    from fraudapp.services.transactions import labels, scoring

    before = latest_windows()
    tx = scoring.TransactionIn(dt.datetime(2099, 12, 31, 12), 1, 2, 10.0)
    labels.give_feedback(scoring.score(tx, consent=True).id, "session:x", correct=False)
    assert latest_windows() == before
