"""Migrations build the schema the models describe, on SQLite and on PostgreSQL."""

import datetime as dt
import uuid
import warnings

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import make_url

from fraudapp import create_app
from fraudapp.extensions import db
from fraudapp.models import Label


@pytest.fixture
def fresh_database_url(database_url, tmp_path):
    """An empty database of the suite's kind."""
    if not database_url.startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'migrated.db'}"
        return
    name = f"fraudapp_migrations_{uuid.uuid4().hex[:8]}"
    admin = create_engine(
        make_url(database_url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield str(make_url(database_url).set(database=name))
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def test_upgrade_builds_the_models_schema_and_downgrade_removes_it(fresh_database_url, tmp_path):
    app = create_app(
        {"TESTING": True, "DATABASE_URL": fresh_database_url, "MODEL_DIR": str(tmp_path / "models")}
    )
    with app.app_context():
        upgrade()
        with db.engine.connect() as connection, warnings.catch_warnings():
            # SQLite's reflection skips expression indexes, so autogenerate cannot compare this
            # one there (PostgreSQL's does); its DDL is checked instead.
            warnings.filterwarnings("ignore", ".*expression-based index '?uq_training_runs_one")
            diff = compare_metadata(MigrationContext.configure(connection), db.metadata)
            if connection.dialect.name == "sqlite":
                ddl = connection.scalar(
                    text("SELECT sql FROM sqlite_master WHERE name = 'uq_training_runs_one_active'")
                )
                assert "UNIQUE INDEX" in ddl and "status IN ('queued', 'running')" in ddl
        assert diff == []
        assert {"transactions", "labels", "predictions", "api_tokens"} <= set(
            inspect(db.engine).get_table_names()
        )
        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        db.engine.dispose()


def test_the_one_active_run_index_keeps_the_oldest_of_runs_queued_side_by_side(
    fresh_database_url, tmp_path
):
    app = create_app(
        {"TESTING": True, "DATABASE_URL": fresh_database_url, "MODEL_DIR": str(tmp_path / "models")}
    )
    with app.app_context():
        upgrade(revision="b6762762d240")
        insert = text(
            "INSERT INTO training_runs (status, reason, requested_by, created_at, cancel_requested)"
            " VALUES (:status, 'admin', 'admin', CURRENT_TIMESTAMP, false)"
        )
        with db.engine.begin() as connection:
            for status in ("succeeded", "queued", "queued", "running"):
                connection.execute(insert, {"status": status})
        upgrade(revision="ab10dafea6c4")
        with db.engine.connect() as connection:
            rows = connection.execute(
                text("SELECT id, status, error FROM training_runs ORDER BY id")
            ).all()
        assert [(r.id, r.status) for r in rows] == [
            (1, "succeeded"),
            (2, "queued"),
            (3, "failed"),
            (4, "failed"),
        ]
        assert "simultaneous requests" in rows[2].error
        downgrade(revision="base")
        db.engine.dispose()


def test_label_known_at_is_filled_for_existing_labels(fresh_database_url, tmp_path):
    app = create_app(
        {"TESTING": True, "DATABASE_URL": fresh_database_url, "MODEL_DIR": str(tmp_path / "models")}
    )
    with app.app_context():
        upgrade(revision="d7a3c9e1f2b4")
        with db.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO transactions (tx_time, customer_id, terminal_id, amount, fraud,"
                    " label_source, source, created_at)"
                    " VALUES (1522541000, 1, 2, 3.0, true, 'import', 'import', :now)"
                ),
                {"now": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)},
            )
            for source in ("import", "feedback"):
                connection.execute(
                    text(
                        "INSERT INTO labels (transaction_id, fraud, source, created_at)"
                        " VALUES (1, true, :source, :now)"
                    ),
                    {"source": source, "now": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)},
                )
        upgrade()
        known = [label.known_at for label in db.session.scalars(select(Label).order_by(Label.id))]
        # the import: its transaction's time plus 7 days; the feedback: when it was given
        assert known == [
            dt.datetime(2018, 4, 8, 0, 3, 20, tzinfo=dt.UTC),
            dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        ]
        db.session.remove()
        downgrade(revision="base")
        db.engine.dispose()


def test_labels_get_their_transactions_time(fresh_database_url, tmp_path):
    app = create_app(
        {"TESTING": True, "DATABASE_URL": fresh_database_url, "MODEL_DIR": str(tmp_path / "models")}
    )
    with app.app_context():
        upgrade(revision="f3c8a1d5e7b2")
        now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
        with db.engine.begin() as connection:
            for tx_time in (1522541000, 1522542000):
                connection.execute(
                    text(
                        "INSERT INTO transactions (tx_time, customer_id, terminal_id, amount,"
                        " source, created_at) VALUES (:tx_time, '1', '2', 3.0, 'predict', :now)"
                    ),
                    {"tx_time": tx_time, "now": now},
                )
            for transaction_id in (2, 1, 2):
                connection.execute(
                    text(
                        "INSERT INTO labels (transaction_id, fraud, source, created_at, known_at)"
                        " VALUES (:id, true, 'feedback', :now, :now)"
                    ),
                    {"id": transaction_id, "now": now},
                )
        upgrade()
        times = db.session.scalars(select(Label.tx_time).order_by(Label.id)).all()
        assert times == [1522542000, 1522541000, 1522542000]
        db.session.remove()
        downgrade(revision="base")
        db.engine.dispose()


def test_integer_ids_become_text_and_back_keeping_labels_and_predictions(
    fresh_database_url, tmp_path
):
    """Existing integer ids become their decimal text (the indexes rebuilt, and on SQLite the
    table's rebuild deletes no label or prediction by cascade); the downgrade turns them back into
    integers, and refuses while an id is not a whole number."""
    app = create_app(
        {"TESTING": True, "DATABASE_URL": fresh_database_url, "MODEL_DIR": str(tmp_path / "models")}
    )
    now = {"now": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)}
    with app.app_context():
        upgrade(revision="a243f4695a88")
        with db.engine.begin() as connection:
            for customer, terminal in ((1, 2), (4961, 0), (2**40, 7)):
                connection.execute(
                    text(
                        "INSERT INTO transactions (tx_time, customer_id, terminal_id, amount,"
                        " fraud, label_source, source, created_at)"
                        " VALUES (1522541000, :c, :t, 3.0, true, 'import', 'import', :now)"
                    ),
                    {"c": customer, "t": terminal} | now,
                )
            connection.execute(
                text(
                    "INSERT INTO labels (transaction_id, fraud, source, created_at, known_at)"
                    " VALUES (1, true, 'feedback', :now, :now)"
                ),
                now,
            )
            connection.execute(
                text(
                    "INSERT INTO predictions (transaction_id, score, is_fraud, threshold,"
                    " model_version, features, created_at) VALUES (2, 0.5, true, 0.4, 'v1',"
                    " '{}', :now)"
                ),
                now,
            )
        upgrade()
        ids = "SELECT customer_id, terminal_id FROM transactions ORDER BY id"
        with db.engine.connect() as connection:
            assert [tuple(row) for row in connection.execute(text(ids))] == [
                ("1", "2"),
                ("4961", "0"),
                (str(2**40), "7"),
            ]
            counts = "SELECT (SELECT count(*) FROM labels), (SELECT count(*) FROM predictions)"
            assert tuple(connection.execute(text(counts)).one()) == (1, 1)
            indexes = {
                i["name"]: i["column_names"]
                for i in inspect(connection).get_indexes("transactions")
            }
            assert indexes["ix_transactions_customer_time"] == ["customer_id", "tx_time", "amount"]
            assert indexes["ix_transactions_terminal_time"] == ["terminal_id", "tx_time", "fraud"]
            assert indexes["ix_transactions_time"] == ["tx_time", "fraud", "customer_id"]
            with warnings.catch_warnings():  # as in the first test: SQLite's reflection
                warnings.filterwarnings("ignore", ".*expression-based index '?uq_training_runs_one")
                diff = compare_metadata(MigrationContext.configure(connection), db.metadata)
            assert diff == []
        with db.engine.begin() as connection:
            connection.execute(
                text("UPDATE transactions SET customer_id = 'cus_8f2aQ' WHERE id = 3")
            )
        config = app.extensions["migrate"].migrate.get_config()
        command.downgrade(config, "f3c8a1d5e7b2")  # the later revisions first
        with pytest.raises(RuntimeError, match="1 transactions have a customer_id that is not"):
            command.downgrade(config, "a243f4695a88")
        version = "SELECT version_num FROM alembic_version"
        with db.engine.connect() as connection:
            assert connection.scalar(text(version)) == "f3c8a1d5e7b2"
        with db.engine.begin() as connection:
            connection.execute(text("UPDATE transactions SET customer_id = '0042' WHERE id = 3"))
        with pytest.raises(RuntimeError, match="not a whole number"):  # "0042" is not 42's text
            command.downgrade(config, "a243f4695a88")
        with db.engine.begin() as connection:
            connection.execute(text("UPDATE transactions SET customer_id = '-42' WHERE id = 3"))
        downgrade(revision="a243f4695a88")
        with db.engine.connect() as connection:
            assert [tuple(row) for row in connection.execute(text(ids))] == [
                (1, 2),
                (4961, 0),
                (-42, 7),
            ]
            assert tuple(connection.execute(text(counts)).one()) == (1, 1)
        downgrade(revision="base")
        db.engine.dispose()
