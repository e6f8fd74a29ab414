"""The `flask` commands, run as an operator would."""

import json
import shutil

from sqlalchemy import func, select

from fraudapp.extensions import db
from fraudapp.models import ApiToken, Transaction
from fraudapp.services.serving import registry


def test_import_command_reports_and_is_idempotent(runner, tmp_path, simulated_frame):
    path = tmp_path / "history.csv"
    simulated_frame.head(500).to_csv(path, index=False)
    first = runner.invoke(args=["import-transactions", str(path)])
    assert first.exit_code == 0, first.output
    assert "500 rows read, 500 added, 0 already present, 500 labels" in first.output
    second = runner.invoke(args=["import-transactions", str(path)])
    assert "0 added, 500 already present" in second.output


def test_import_command_refuses_a_bad_file_with_the_line(runner, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(
        "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT\n"
        "1,2018-04-01 00:00:00,1,2,3\n2,2018-04-01 00:00:00,1,2,-3\n"
    )
    result = runner.invoke(args=["import-transactions", str(path)])
    assert result.exit_code == 1
    assert "line 3: TX_AMOUNT" in result.output and "nothing was imported" in result.output
    assert db.session.scalar(select(func.count()).select_from(Transaction)) == 0


def test_simulate_command_adds_history(runner):
    result = runner.invoke(
        args=["simulate", "--customers", "50", "--terminals", "100", "--days", "5", "--seed", "3"]
    )
    assert result.exit_code == 0, result.output
    assert db.session.scalar(select(func.count()).select_from(Transaction)) > 100


def test_train_json_has_the_documented_keys(runner, stored_history):
    result = runner.invoke(
        args=[
            "train",
            "--train-start",
            "2018-04-16",
            "--train-days",
            "7",
            "--delay-days",
            "7",
            "--test-days",
            "7",
            "--json",
        ]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    for key in (
        "version",
        "auc",
        "ap",
        "cp_at_100",
        "threshold",
        "precision",
        "recall",
        "f1",
        "train_rows",
        "test_rows",
    ):
        assert key in summary
    assert summary["version"] == "v2" and summary["auc"] > 0.7
    assert registry().current() == "v1"  # not promoted without --promote


def test_train_without_history_fails_clearly(runner):
    result = runner.invoke(args=["train", "--train-start", "2018-04-16"])
    assert result.exit_code == 1 and "both classes" in result.output


def test_models_list_promote_rollback(runner, stored_history):
    runner.invoke(args=["train", "--train-start", "2018-04-16", "--promote"])
    listed = json.loads(runner.invoke(args=["models", "list", "--json"]).output)
    assert [(m["version"], m["current"]) for m in listed] == [("v1", False), ("v2", True)]
    assert runner.invoke(args=["models", "rollback"]).output.strip() == "rolled back to v1"
    assert registry().current() == "v1"
    assert runner.invoke(args=["models", "promote", "v2"]).exit_code == 0
    assert registry().current() == "v2"
    bad = runner.invoke(args=["models", "promote", "v9"])
    assert bad.exit_code == 1 and registry().current() == "v2"
    assert runner.invoke(args=["models", "promote", "../x"]).exit_code == 1


def test_api_token_is_printed_last_and_works(runner, client, stored_history):
    result = runner.invoke(args=["create-api-token", "bank"])
    token = result.output.strip().splitlines()[-1]
    response = client.get("/api/v1/model", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert runner.invoke(args=["create-api-token", "bank"]).exit_code == 1


def test_api_token_scope_is_own_unless_asked_for_all(runner):
    assert runner.invoke(args=["create-api-token", "bank"]).exit_code == 0
    result = runner.invoke(args=["create-api-token", "auditor", "--all-predictions"])
    assert result.exit_code == 0 and "scope all" in result.output
    scopes = dict(db.session.execute(select(ApiToken.name, ApiToken.scope)).all())
    assert scopes == {"bank": "own", "auditor": "all"}


def test_init_demo_fills_only_what_is_missing(app, runner, tmp_path, instance_path):
    shutil.rmtree(app.config["MODEL_DIR"])  # an empty registry
    app.config.update(DEMO_CUSTOMERS=150, DEMO_TERMINALS=300, DEMO_DAYS=30)
    first = runner.invoke(args=["init-demo"])
    assert first.exit_code == 0, first.output
    assert "simulated" in first.output and "serving model v1" in first.output
    assert "SECRET_KEY" in (instance_path / "config.py").read_text()
    count = db.session.scalar(select(func.count()).select_from(Transaction))
    second = runner.invoke(args=["init-demo"])
    assert second.output.strip() == "demo ready"
    assert db.session.scalar(select(func.count()).select_from(Transaction)) == count
