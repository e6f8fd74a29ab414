"""A shadowed challenger reaches every prediction node: by the webhook, else by the node's own
sync; a node that cannot install it serves the champion alone and says so."""

from __future__ import annotations

from sqlalchemy import select, update

from fraudapp.extensions import db
from fraudapp.models import ModelVersion, NodeStatus
from fraudapp.services import serving
from fraudapp.services.distribution import agent, catalog, outbox, releases
from tests.conftest import login
from tests.services.test_distribution import node, trainer  # noqa: F401 (fixtures)
from tests.services.test_shadow import other_version


def test_the_webhook_installs_the_challenger_and_the_nodes_workers_score_with_it(app, node):  # noqa: F811
    releases.release("v1", "promote", "admin")
    v2 = other_version()
    releases.start_shadow(v2, "admin")
    assert v2 in node["registry"].versions()
    assert node["registry"].current() == "v1"  # the champion still serves there
    with node["app"].app_context():
        assert serving.current_model().version == "v1"
        assert serving.challenger_model().version == v2
        assert serving.challenger_state() == (v2, None)


def test_a_node_that_missed_the_webhook_installs_the_challenger_on_its_next_sync(app, node):  # noqa: F811
    releases.release("v1", "promote", "admin")
    app.config["NODES"] = []  # the node is not told
    v2 = other_version()
    releases.start_shadow(v2, "admin")
    assert v2 not in node["registry"].versions()
    with node["app"].app_context():
        assert serving.challenger_model() is None
        version, problem = serving.challenger_state()
        assert version == v2 and "serving the champion alone" in problem
        agent.tick()
        assert v2 in node["registry"].versions()
        node["app"].extensions.pop("fraudapp.challenger", None)
        assert serving.challenger_model().version == v2
        row = db.session.scalar(select(NodeStatus).where(NodeStatus.name == "node-a"))
        assert row.version == "v1" and row.error is None


def test_a_node_that_cannot_install_the_challenger_serves_the_champion_and_says_so(app, node):  # noqa: F811
    releases.release("v1", "promote", "admin")
    app.config["NODES"] = []
    v2 = other_version()
    releases.start_shadow(v2, "admin")
    db.session.execute(
        update(ModelVersion)
        .where(ModelVersion.version == v2)
        .values(artifact_url="http://127.0.0.1:9/artifacts/" + v2)
    )
    db.session.commit()
    with node["app"].app_context():
        agent.tick()  # the champion is fine: no error raised
        row = db.session.scalar(select(NodeStatus).where(NodeStatus.name == "node-a"))
        assert row.version == "v1" and row.last_error is None
        assert f"challenger {v2} not installed" in row.error
        health = node["app"].test_client().get("/healthz").get_json()
        assert health["status"] == "ok" and health["model_version"] == "v1"
        assert health["challenger"] == v2 and health["challenger_problem"]


def test_a_shadow_started_on_a_node_is_announced_by_the_trainer(app, node):  # noqa: F811
    releases.release("v1", "promote", "admin")
    v2 = other_version()
    catalog.register(v2)
    db.session.commit()
    with node["app"].app_context():  # an admin on the node's run page
        releases.start_shadow(v2, "admin")
        assert releases.challenger() == v2
    assert v2 in node["registry"].versions()  # downloaded from the trainer and verified
    assert releases.announce_pending() == 1  # the trainer's next round tells every node
    assert releases.announce_pending() == 0
    assert outbox.deliver_due() == 1


def test_the_nodes_page_names_the_challenger_and_a_node_lacking_it(app, node, client, users):  # noqa: F811
    releases.release("v1", "promote", "admin")
    app.config["NODES"] = []
    v2 = other_version()
    releases.start_shadow(v2, "admin")
    db.session.execute(
        update(ModelVersion)
        .where(ModelVersion.version == v2)
        .values(artifact_url="http://127.0.0.1:9/x")
    )
    db.session.commit()
    with node["app"].app_context():
        agent.tick()
    login(client, "admin")
    page = client.get("/admin/nodes").text
    assert f"challenger <strong>{v2}</strong> in shadow" in page
    assert f"challenger {v2} not installed" in page
