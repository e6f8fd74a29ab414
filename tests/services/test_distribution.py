"""Model distribution between a trainer and prediction nodes, over real HTTP on loopback.

The trainer (ROLE "all": the suite's app) and a node (ROLE "web", its own empty model dir, the same
database) are served by werkzeug servers in threads, so webhooks and artifact downloads go through
real sockets, signatures and JSON.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import threading
import time
import urllib.error
import urllib.request

import pytest
from sqlalchemy import insert, select, update
from werkzeug.serving import make_server

from fraudapp import create_app, register_model
from fraudapp.extensions import db
from fraudapp.ml.registry import Registry, previous_of
from fraudapp.models import (
    AuditEvent,
    ModelRelease,
    ModelVersion,
    NodeStatus,
    WebhookDelivery,
    WebhookNonce,
    utcnow,
)
from fraudapp.services.distribution import agent, catalog, outbox, receiver, releases
from fraudapp.services.serving import registry
from fraudapp.services.training import runs
from fraudapp.services.training import trainer as trainer_loop
from fraudapp.signing import HEADER, artifact_message, sign
from tests.conftest import login

SECRET = "node-secret-" + "x" * 20


class Server:
    """A WSGI app on a free loopback port, in a thread."""

    def __init__(self, app):
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join()


def _copy_of_v1() -> str:
    """A second registry version without training: v1's model under the next number."""
    reg = registry()
    meta = {k: v for k, v in reg.meta("v1").items() if k not in ("sha256", "version")}
    return reg.install((reg.path("v1") / "model.txt").read_text(), meta)


@pytest.fixture
def trainer(app):
    """The suite's app as the trainer, serving its artifacts over HTTP."""
    server = Server(app)
    app.config.update(WEBHOOK_SECRET=SECRET, ARTIFACT_BASE_URL=server.url)
    yield server
    server.stop()


@pytest.fixture
def node(app, trainer, database_url, tmp_path):
    """A prediction node: ROLE web, an empty model dir of its own, served over HTTP, listed in
    the trainer's FRAUDAPP_NODES."""
    node_app = create_app(
        {
            "TESTING": True,
            "ROLE": "web",
            "DATABASE_URL": database_url,
            "MODEL_DIR": str(tmp_path / "node-models"),
            "WEBHOOK_SECRET": SECRET,
            "NODE_NAME": "node-a",
            "MODEL_CHECK_INTERVAL": 0.0,
        }
    )
    server = Server(node_app)
    app.config["NODES"] = [server.url]
    yield {"app": node_app, "url": server.url, "registry": Registry(tmp_path / "node-models")}
    server.stop()
    with node_app.app_context():
        db.engine.dispose()


def _post_hook(url: str, body: bytes, header: str | None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"} | ({HEADER: header} if header else {})
    request = urllib.request.Request(
        url + "/hooks/model-published", data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _announcement(version: str) -> bytes:
    row = catalog.register_if_local(version)
    db.session.commit()
    return json.dumps(
        {
            "event": "model.published",
            "version": version,
            "sha256": row.sha256,
            "artifact_url": row.artifact_url,
            "published_at": utcnow().isoformat(),
        }
    ).encode()


def test_a_promotion_reaches_the_node_which_downloads_verifies_and_serves_it(app, node):
    releases.release("v1", "promote", "admin")
    v2 = _copy_of_v1()
    runs.promote(v2, "admin")

    assert node["registry"].current() == v2
    assert node["registry"].meta(v2)["sha256"] == registry().meta(v2)["sha256"]
    with node["app"].app_context():
        assert node["app"].extensions["fraudapp.model"].get().version == v2
    deliveries = list(db.session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))
    assert [(d.payload["version"], d.status, d.attempts, d.last_status) for d in deliveries] == [
        ("v1", "delivered", 1, 200),
        (v2, "delivered", 1, 200),
    ]
    assert deliveries[-1].url == node["url"] + "/hooks/model-published"
    assert deliveries[-1].last_ms > 0

    runs.rollback("admin")  # the database's history decides, on every node
    assert node["registry"].current() == "v1"
    assert releases.current() == "v1"
    actions = db.session.execute(
        select(ModelRelease.version, ModelRelease.action, ModelRelease.actor).order_by(
            ModelRelease.id
        )
    ).all()  # the first release starts with the registry's own history
    assert [tuple(a) for a in actions] == [
        ("v1", "promote", "registry"),
        ("v1", "promote", "admin"),
        (v2, "promote", "admin"),
        ("v1", "rollback", "admin"),
    ]


def test_a_promotion_clicked_on_a_node_is_announced_by_the_trainer(app, node):
    releases.release("v1", "promote", "admin")
    v2 = _copy_of_v1()
    catalog.register(v2)
    db.session.commit()
    with node["app"].app_context():  # an admin on the node's /admin/runs page
        runs.promote(v2, "admin")
    assert node["registry"].current() == v2  # downloaded from the trainer and verified
    db.session.expire_all()
    announced = select(WebhookDelivery).where(WebhookDelivery.payload["version"].as_string() == v2)
    assert db.session.scalars(announced).all() == []

    assert releases.announce_pending() == 1  # the trainer's next round
    assert releases.announce_pending() == 0
    assert outbox.deliver_due() == 1
    delivery = db.session.scalars(announced).one()
    assert (delivery.status, delivery.last_status) == ("delivered", 200)
    assert registry().current() == "v1"
    assert releases.sync() == v2  # the trainer's periodic check follows the release
    assert registry().current() == v2


def test_forged_stale_replayed_and_tampered_deliveries_change_nothing(app, node, caplog):
    releases.release("v1", "promote", "admin")
    v2 = _copy_of_v1()
    db.session.add(ModelRelease(version=v2, action="promote", actor="test"))
    db.session.commit()
    body = _announcement(v2)
    installed_before = node["registry"].versions()
    current_before = node["registry"].current()

    forged = sign("not-the-secret-" + "y" * 20, body)
    assert _post_hook(node["url"], body, forged)[0] == 401
    assert _post_hook(node["url"], body, None)[0] == 401
    stale = sign(SECRET, body, int(time.time()) - 301)
    assert _post_hook(node["url"], body, stale)[0] == 401
    other_body = body.replace(b'"v', b'"v9', 1)  # signed for another body
    assert _post_hook(node["url"], other_body, sign(SECRET, body))[0] == 401

    tampered = json.loads(body) | {"sha256": "0" * 64}
    tampered = json.dumps(tampered).encode()
    status, answer = _post_hook(node["url"], tampered, sign(SECRET, tampered))
    assert status == 400 and "artifact" in answer["errors"]

    malformed = json.dumps({"event": "model.deleted", "version": "../x"}).encode()
    status, answer = _post_hook(node["url"], malformed, sign(SECRET, malformed))
    assert status == 400
    assert set(answer["errors"]) == {"event", "version", "sha256", "artifact_url"}

    assert node["registry"].versions() == installed_before
    assert node["registry"].current() == current_before

    header = sign(SECRET, body)
    status, answer = _post_hook(node["url"], body, header)
    assert status == 200 and answer["serving"] == v2
    assert _post_hook(node["url"], body, header) == (400, {"error": "replayed delivery"})
    status, answer = _post_hook(node["url"], body, sign(SECRET, body, int(time.time()) + 1))
    assert (status, answer["status"]) == (200, "already installed")  # a no-op
    assert node["registry"].current() == v2
    assert "bad or stale signature" in caplog.text and "replayed delivery" in caplog.text


@pytest.mark.parametrize(
    "rewrite",
    [
        lambda t, v1: f"v1={v1},t={t}",  # reordered
        lambda t, v1: f"t=0{t},v1={v1}",  # a leading zero
        lambda t, v1: f"t=+{t},v1={v1}",  # a sign
        lambda t, v1: f"t={t},v1={v1},v0=x",  # an extra field
        lambda t, v1: f"t={t},v1={v1.upper()}",  # upper-case hex
        lambda t, v1: f"t= {t},v1={v1}",  # a space
    ],
)
def test_a_rewritten_header_does_not_replay_an_accepted_delivery(app, node, rewrite):
    releases.release("v1", "promote", "admin")
    body = _announcement("v1")
    header = sign(SECRET, body)
    assert _post_hook(node["url"], body, header)[0] == 200
    t, v1 = header.removeprefix("t=").split(",v1=")
    status, answer = _post_hook(node["url"], body, rewrite(t, v1))
    assert (status, answer) == (401, {"error": "bad or stale signature"})
    assert _post_hook(node["url"], body, header) == (400, {"error": "replayed delivery"})


def test_the_replay_check_keys_on_the_timestamp_and_signature(app):
    header = sign(SECRET, b"{}")
    assert receiver.first_use(header)
    assert not receiver.first_use(header)
    t, v1 = header.removeprefix("t=").split(",v1=")
    assert not receiver.first_use(f"v1={v1},t={t}")  # unparsable: never recorded as new
    digest = hashlib.sha256(f"{t}.{v1}".encode()).hexdigest()
    assert db.session.get(WebhookNonce, digest) is not None


def test_a_stale_announcement_does_not_override_a_later_release(app, node):
    releases.release("v1", "promote", "admin")
    v2 = _copy_of_v1()
    body = _announcement(v2)  # announced, but v1 is still the released version
    status, answer = _post_hook(node["url"], body, sign(SECRET, body))
    assert status == 200 and answer["serving"] == "v1"
    assert node["registry"].current() == "v1" and v2 in node["registry"].versions()


def test_a_node_that_was_down_gets_retries_with_back_off_then_catches_up(app, node, trainer):
    app.config["NODES"] = ["http://127.0.0.1:9"]  # nothing listens on the discard port
    app.config.update(WEBHOOK_BACKOFF_SECONDS=2.0, WEBHOOK_MAX_ATTEMPTS=3)
    releases.release("v1", "promote", "admin")
    delivery = db.session.scalar(select(WebhookDelivery))
    assert (delivery.status, delivery.attempts, delivery.last_status) == ("pending", 1, None)
    assert delivery.last_error
    due = delivery.next_attempt_at.replace(tzinfo=dt.UTC) - utcnow()
    assert dt.timedelta(seconds=1) < due <= dt.timedelta(seconds=2)
    assert outbox.deliver_due() == 0  # not yet due

    def attempt_now() -> WebhookDelivery:
        db.session.execute(update(WebhookDelivery).values(next_attempt_at=utcnow()))
        db.session.commit()
        assert outbox.deliver_due() == 1
        db.session.expire_all()
        return db.session.get(WebhookDelivery, delivery.id)

    delivery = attempt_now()
    due = delivery.next_attempt_at.replace(tzinfo=dt.UTC) - utcnow()
    assert delivery.attempts == 2 and dt.timedelta(seconds=3) < due <= dt.timedelta(seconds=4)
    delivery = attempt_now()
    assert (delivery.status, delivery.attempts) == ("failed", 3)
    assert node["registry"].current() is None

    with node["app"].app_context():  # the node starts (or its periodic check runs)
        agent.tick()
        status = db.session.get(NodeStatus, "node-a")
        assert (status.role, status.version, status.error) == ("web", "v1", None)
    assert node["registry"].current() == "v1"


def test_node_status_shows_who_is_behind_or_silent(app, node):
    releases.release("v1", "promote", "admin")
    with node["app"].app_context():
        agent.tick()
    db.session.add(NodeStatus(name="node-b", role="web", version=None, heartbeat_at=utcnow()))
    db.session.add(
        NodeStatus(
            name="node-c", role="web", version="v1", heartbeat_at=utcnow() - dt.timedelta(hours=1)
        )
    )
    db.session.commit()
    state = {row["name"]: (row["version"], row["behind"], row["silent"]) for row in agent.nodes()}
    assert state == {
        "node-a": ("v1", False, False),
        "node-b": (None, True, False),
        "node-c": ("v1", False, True),
    }


def test_a_node_serving_a_fallback_reports_it_and_heals(app, client, users):
    version = _copy_of_v1()
    releases.release(version, "promote", "admin")
    model_file = registry().path(version) / "model.txt"
    original = model_file.read_bytes()
    model_file.write_bytes(original[:100])
    app.config["MODEL_RETRY_SECONDS"] = 0.0
    register_model(app)  # a worker (re)starts
    agent.tick()
    (row,) = agent.nodes()
    assert (row["version"], row["degraded"], row["behind"]) == ("v1", True, True)
    assert row["error"].startswith("serving v1 instead of v2: ") and "checksum" in row["error"]
    login(client, users["admin"])
    page = client.get("/admin/nodes").get_data(as_text=True)
    assert ">degraded</span>" in page and "serving v1 instead of v2" in page

    model_file.write_bytes(original)
    agent.tick()
    (row,) = agent.nodes()
    assert (row["version"], row["degraded"], row["behind"], row["error"]) == (
        "v2",
        False,
        False,
        None,
    )


def _get_artifact(url: str, header: str | None) -> int:
    request = urllib.request.Request(url, headers={HEADER: header} if header else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            data = json.loads(response.read())
            assert hashlib.sha256(data["model"].encode()).hexdigest() == data["meta"]["sha256"]
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_artifact_endpoint_wants_a_signature_and_serves_verified_versions(app, trainer):
    def get(path: str, secret: str | None, signed_path: str | None = None) -> int:
        nonce = secrets.token_urlsafe(16)
        message = artifact_message(signed_path or path, nonce)
        header = sign(secret, message) if secret else None
        return _get_artifact(f"{trainer.url}{path}?nonce={nonce}", header)

    assert get("/artifacts/v1", None) == 401
    assert get("/artifacts/v1", "wrong-secret-" + "z" * 20) == 401
    assert get("/artifacts/v1", SECRET, "/artifacts/v2") == 401  # signed for another path
    assert get("/artifacts/v1", SECRET) == 200
    assert get("/artifacts/v7", SECRET) == 404
    outbox.add_endpoint("http://10.0.0.9:8000", "own-secret-of-node-" + "w" * 10, "admin")
    assert get("/artifacts/v1", "own-secret-of-node-" + "w" * 10) == 200


def test_a_signed_artifact_request_works_once(app, trainer):
    nonce = secrets.token_urlsafe(16)
    url = f"{trainer.url}/artifacts/v1?nonce={nonce}"
    header = sign(SECRET, artifact_message("/artifacts/v1", nonce))
    assert _get_artifact(url, header) == 200
    assert _get_artifact(url, header) == 401  # the captured request, replayed
    other = secrets.token_urlsafe(16)
    assert _get_artifact(f"{trainer.url}/artifacts/v1?nonce={other}", header) == 401
    # a request signed over the path alone (no nonce) is refused
    assert _get_artifact(f"{trainer.url}/artifacts/v1", sign(SECRET, b"/artifacts/v1")) == 401
    assert _get_artifact(f"{trainer.url}/artifacts/v1?nonce=short", header) == 401
    assert releases.fetch(catalog.artifact_url("v1"))["version"] == "v1"  # a fresh one works
    assert releases.fetch(catalog.artifact_url("v1"))["version"] == "v1"


def test_roles_choose_the_blueprints(database_url, tmp_path):
    def make(role):
        config = {"TESTING": True, "ROLE": role, "MODEL_DIR": str(tmp_path)}
        return create_app(config | {"DATABASE_URL": database_url})

    web, trainer_only = make("web"), make("trainer")
    assert web.test_client().get("/artifacts/v1").status_code == 404
    assert web.test_client().post("/hooks/model-published").status_code == 401
    assert trainer_only.test_client().get("/").status_code == 404
    assert trainer_only.test_client().get("/").is_json
    assert trainer_only.test_client().get("/artifacts/v1").status_code == 401
    for made in (web, trainer_only):
        with made.app_context():
            db.engine.dispose()
    with pytest.raises(RuntimeError, match="FRAUDAPP_ROLE"):
        make("everything")


def test_previous_of_walks_back_through_promotions():
    assert previous_of([]) is None
    assert previous_of([("v1", "promote")]) is None
    changes = [("v1", "promote"), ("v2", "promote"), ("v3", "promote")]
    assert previous_of(changes) == "v2"
    assert previous_of([*changes, ("v2", "rollback")]) == "v1"
    assert previous_of([*changes, ("v3", "sync")]) == "v2"


def test_the_nodes_page_adds_and_removes_nodes(app, client, users, node):
    releases.release("v1", "promote", "admin")
    with node["app"].app_context():
        agent.tick()
    login(client, users["admin"])
    page = client.get("/admin/nodes")
    assert page.status_code == 200
    assert "node-a" in page.text and node["url"] in page.text and "up to date" in page.text

    bad = client.post("/admin/nodes", data={"url": "ftp://x", "secret": "short"})
    assert bad.status_code == 400
    assert "Enter an http(s) URL" in bad.text and "Use 16 to 200 characters" in bad.text
    assert outbox.endpoints() == [
        {"id": None, "url": node["url"], "secret": SECRET, "source": "config"}
    ]

    added = client.post(
        "/admin/nodes",
        data={"url": "http://10.0.0.5:8000/", "secret": "a-secret-of-20-chars"},
        follow_redirects=True,
    )
    assert "http://10.0.0.5:8000 will be told" in added.text
    assert "a-secret-of-20-chars" not in added.text
    again = client.post(
        "/admin/nodes", data={"url": "http://10.0.0.5:8000", "secret": "a-secret-of-20-chars"}
    )
    assert again.status_code == 400 and "already a node" in again.text
    endpoint = next(e for e in outbox.endpoints() if e["source"] == "admin")
    assert endpoint["url"] == "http://10.0.0.5:8000"

    removed = client.post(f"/admin/nodes/{endpoint['id']}/remove", follow_redirects=True)
    assert "no longer told" in removed.text
    assert [e["source"] for e in outbox.endpoints()] == ["config"]
    actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("node.%")))
    assert sorted(actions) == ["node.added", "node.removed"]
    assert client.post("/admin/nodes/999/remove", follow_redirects=True).status_code == 200


def test_the_trainer_advertises_its_versions_where_it_is_now(app, trainer):
    catalog.register("v1")
    db.session.commit()
    v2 = _copy_of_v1()
    app.config["ARTIFACT_BASE_URL"] = "http://trainer.internal:8100/"
    assert catalog.advertise() == 2  # v1 moved, v2 was not listed yet
    assert catalog.advertise() == 0
    rows = db.session.scalars(select(ModelVersion).order_by(ModelVersion.version)).all()
    assert [(r.version, r.artifact_url) for r in rows] == [
        ("v1", "http://trainer.internal:8100/artifacts/v1"),
        (v2, f"http://trainer.internal:8100/artifacts/{v2}"),
    ]


def test_sync_ends_on_the_latest_release_when_one_lands_while_it_installs(app, monkeypatch):
    releases.release("v1", "promote", "admin")
    v2, v3 = _copy_of_v1(), _copy_of_v1()
    db.session.add(ModelRelease(version=v2, action="promote", actor="test"))
    db.session.commit()
    install = releases.ensure_installed

    def racing(version: str) -> None:  # another process releases v3 meanwhile
        install(version)
        if version == v2:
            with db.engine.begin() as connection:
                connection.execute(
                    insert(ModelRelease).values(
                        version=v3,
                        action="promote",
                        actor="other",
                        announced=True,
                        created_at=utcnow(),
                    )
                )

    monkeypatch.setattr(releases, "ensure_installed", racing)
    assert releases.sync() == v3
    assert registry().current() == v3


def _until(condition, timeout: float = 20.0):
    """Wait for `condition()` to be truthy; its value."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


def _status(name: str) -> NodeStatus | None:
    db.session.expire_all()
    return db.session.get(NodeStatus, name)


def test_the_node_agent_survives_an_unwritable_model_dir(
    app, client, users, node, monkeypatch, caplog
):
    """A model dir that cannot be written (root ignores chmod, so the write itself fails here):
    the agent thread logs once, backs off, reports the error and heals once the dir is fixed."""
    app.config["NODES"] = []  # no webhook: the node's agent must install the release itself
    releases.release("v1", "promote", "admin")
    node["app"].config.update(
        NODE_SYNC_SECONDS=0.05,
        BACKGROUND_RETRY_FIRST_SECONDS=0.05,
        BACKGROUND_RETRY_MAX_SECONDS=0.2,
    )
    tries = []

    def unwritable(self, *args, **kwargs):
        tries.append(1)
        raise PermissionError(13, "Permission denied", str(self.root))

    monkeypatch.setattr(Registry, "install", unwritable)
    stop = threading.Event()
    thread = agent.start_agent(node["app"], stop)
    try:
        _until(lambda: len(tries) >= 4)
        assert thread.is_alive()
        status = _until(lambda: _status("node-a"))
        assert status.error.startswith("PermissionError") and status.last_success_at is None
        logged = [r for r in caplog.records if "node agent failed" in r.getMessage()]
        assert len(logged) == 1 and logged[0].exc_info  # once, with its traceback
        login(client, users["admin"])
        page = client.get("/admin/nodes")
        assert "PermissionError" in page.text and "never" in page.text

        monkeypatch.undo()  # the directory is writable again
        healed = _until(lambda: (row := _status("node-a")) and row.last_success_at and row)
        assert healed.error is None and healed.last_error.startswith("PermissionError")
        assert node["registry"].current() == "v1"
        assert any("node agent works again" in r.getMessage() for r in caplog.records)
        page = client.get("/admin/nodes")
        assert "last error" in page.text and "never" not in page.text.split('id="endpoints"')[0]
    finally:
        stop.set()
        thread.join(10)


def test_the_trainer_courier_survives_any_error_and_reports_it(app, node, monkeypatch, caplog):
    """Webhook delivery failing with an error no one expected (a read-only file system): the
    courier thread lives on, reports it on the trainer's row and delivers once it can."""
    app.config.update(
        NODE_NAME="trainer-a",
        NODE_SYNC_SECONDS=0.2,
        BACKGROUND_RETRY_FIRST_SECONDS=0.05,
        BACKGROUND_RETRY_MAX_SECONDS=0.2,
    )
    delivery = outbox.announce(catalog.register_if_local("v1"))[0]
    db.session.commit()
    tries = []
    deliver_due = outbox.deliver_due

    def broken(*args, **kwargs):
        tries.append(1)
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(outbox, "deliver_due", broken)
    stop = threading.Event()
    thread = threading.Thread(target=trainer_loop._courier, args=(app, stop), daemon=True)
    thread.start()
    try:
        _until(lambda: len(tries) >= 4)
        assert thread.is_alive()
        status = _until(lambda: (row := _status("trainer-a")) and row.last_error and row)
        assert status.last_error.startswith("OSError: [Errno 30] Read-only file system")
        assert db.session.get(WebhookDelivery, delivery.id).status == "pending"
        logged = [
            r for r in caplog.records if "trainer courier (webhooks) failed" in r.getMessage()
        ]
        assert len(logged) == 1 and logged[0].exc_info

        monkeypatch.setattr(outbox, "deliver_due", deliver_due)
        _until(
            lambda: (
                (db.session.expire_all(), db.session.get(WebhookDelivery, delivery.id))[1].status
                == "delivered"
            )
        )
        assert _until(lambda: _status("trainer-a").last_success_at)
    finally:
        stop.set()
        thread.join(10)
