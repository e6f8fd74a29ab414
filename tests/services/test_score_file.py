"""Scoring a file: in time order, each row seeing the stored history and the file's earlier rows;
refused whole on a bad line; stored only when asked."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from fraudapp.extensions import db
from fraudapp.ml import features, registry
from fraudapp.ml.simulate import simulate
from fraudapp.models import DailyCount, Prediction, Transaction
from fraudapp.services.transactions import counts, files, scoring
from tests.services.test_batch_scoring import _inputs


@pytest.fixture
def later(stored_history) -> pd.DataFrame:
    """Twelve days of the same customers and terminals after the stored history, Handbook columns
    (longer than the terminal delay, so the file's own rows reach the terminal windows)."""
    frame = simulate(
        n_customers=600, n_terminals=1200, start_date="2018-05-16", n_days=12, random_state=7
    )
    frame = frame[frame["CUSTOMER_ID"] < 100].reset_index(drop=True)
    frame["TRANSACTION_ID"] = [f"f-{i}" for i in range(len(frame))]
    assert len(frame) > 2_400 and frame["TX_DATETIME"].iloc[-1] > pd.Timestamp("2018-05-26")
    return frame


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(files, "CHUNK_ROWS", 333)  # many chunks: rows carried between them


def test_a_file_scores_like_its_rows_sent_one_by_one_with_consent(
    app, later, tmp_path, small_chunks
):
    source, out = tmp_path / "in.csv.gz", tmp_path / "out.csv"
    later.loc[0, "TRANSACTION_ID"] = 'id, with "quotes"'  # written back quoted
    later.to_csv(source, index=False)
    before = _count(Transaction)
    summary = files.score_file(source, out)
    assert (_count(Transaction), _count(Prediction)) == (before, 0)  # nothing kept
    scored = pd.read_csv(out)
    assert list(scored.columns) == list(files.COLUMNS)
    assert scored["TRANSACTION_ID"].tolist() == later["TRANSACTION_ID"].tolist()
    lists = []
    items = _inputs(later, np.ones(len(later), bool))
    for start in range(0, len(items), 1_000):
        lists += scoring.score_batch(items[start : start + 1_000], want_explanation=False)
    np.testing.assert_allclose(scored["score"], [r.score for r in lists], rtol=0, atol=1e-9)
    assert scored["is_fraud"].tolist() == [int(r.is_fraud) for r in lists]
    assert summary.rows == len(later) and summary.stored == 0
    assert summary.flagged == scored["is_fraud"].sum() > 0
    assert sum(summary.histogram) == len(later)
    flagged = scored[scored["is_fraud"] == 1]
    assert flagged["reasons"].str.contains("the risk").all()
    assert scored.loc[scored["is_fraud"] == 0, "reasons"].isna().all()


def test_store_adds_the_rows_to_the_history_once(app, later, tmp_path, small_chunks):
    source, out = tmp_path / "in.csv", tmp_path / "out.csv.gz"
    later.to_csv(source, index=False)
    before, last_id = _count(Transaction), db.session.scalar(select(func.max(Transaction.id)))
    summary = files.score_file(source, out, store=True)
    assert summary.stored == len(later)
    assert _count(Transaction) == before + len(later) == before + _count(Prediction)
    sources = db.session.scalars(select(Transaction.source).where(Transaction.id > last_id))
    assert set(sources) == {"file"}
    assert counts.flush() == len(later)  # the daily counts, written by the background thread
    assert db.session.scalar(select(func.sum(DailyCount.count))) == len(later)
    scored = pd.read_csv(out).set_index("TRANSACTION_ID")
    assert len(scored) == len(later)
    for prediction in db.session.scalars(select(Prediction).limit(50)):
        row = scored.loc[prediction.transaction.external_id]
        assert prediction.score == row["score"] and prediction.is_fraud is bool(row["is_fraud"])
        assert list(prediction.features) == list(features.FEATURES)
        assert prediction.model_version == "v1" and prediction.created_at.tzinfo is not None
    # the same file again: its ids are stored already, so it is refused and nothing is added
    with pytest.raises(files.FileRefused, match="line 2: TRANSACTION_ID is already stored"):
        files.score_file(source, tmp_path / "again.csv", store=True)
    assert _count(Transaction) == before + len(later)
    assert not (tmp_path / "again.csv").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.loc.__setitem__((2_000, "TX_AMOUNT"), "-5"), "line 2002: TX_AMOUNT"),
        (
            lambda f: f.loc.__setitem__((1_500, "TX_DATETIME"), "2018-05-16 00:00:00"),
            "line 1502: TX_DATETIME is earlier than the line before",
        ),
        (
            lambda f: f.loc.__setitem__((2_400, "TRANSACTION_ID"), "f-3"),
            "line 2402: TRANSACTION_ID appears twice in the file",
        ),
        (lambda f: f.__delitem__("TERMINAL_ID"), "missing column"),
    ],
)
def test_a_bad_line_refuses_the_whole_file(app, later, tmp_path, small_chunks, change, message):
    frame = later.astype(str)
    change(frame)
    folder = tmp_path / "files"
    folder.mkdir()
    source, out = folder / "in.csv", folder / "out.csv"
    frame.to_csv(source, index=False)
    before = _count(Transaction)
    with pytest.raises(files.FileRefused, match=message):
        files.score_file(source, out, store=True)
    assert _count(Transaction) == before and _count(Prediction) == 0
    assert list(folder.iterdir()) == [source]  # no output, no partial file


def test_a_fault_while_the_booster_scores_a_chunk_fails_the_file_and_keeps_nothing(
    app, later, tmp_path, small_chunks, monkeypatch
):
    """The booster scores each chunk on its own thread: its failure reaches the caller, and
    nothing is written or stored."""
    calls = []

    def failing(model, own, threads=1):
        calls.append(len(own))
        if len(calls) == 3:
            raise RuntimeError("booster failed")
        return np.full(len(own), 0.01)

    monkeypatch.setattr(registry.LoadedModel, "score_own", failing)
    folder = tmp_path / "files"
    folder.mkdir()
    source = folder / "in.csv"
    later.to_csv(source, index=False)
    before = _count(Transaction)
    with pytest.raises(RuntimeError, match="booster failed"):
        files.score_file(source, folder / "out.csv", store=True)
    assert 3 <= len(calls) <= 4  # the next chunk may be scoring when the fault surfaces
    assert _count(Transaction) == before and _count(Prediction) == 0
    assert list(folder.iterdir()) == [source]


def test_empty_and_unreadable_files_are_refused(app, tmp_path):
    header_only = tmp_path / "header.csv"
    header_only.write_text("TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT\n")
    with pytest.raises(files.FileRefused, match="no transactions"):
        files.score_file(header_only, tmp_path / "out.csv")
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(b"not gzip at all")
    with pytest.raises(files.FileRefused, match="unreadable"):
        files.score_file(broken, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


def test_the_command_scores_and_reports(runner, later, tmp_path):
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    later.head(300).to_csv(source, index=False)
    result = runner.invoke(args=["score-file", str(source), str(out)])
    assert result.exit_code == 0, result.output
    assert "300 rows scored by model v1" in result.output and "0 stored" in result.output
    assert re.search(r"300 rows in [0-9.]+ s: [0-9,]+ rows/s", result.output)  # its own rate
    assert len(pd.read_csv(out)) == 300
    later.head(300).drop(columns="TX_AMOUNT").to_csv(source, index=False)
    result = runner.invoke(args=["score-file", str(source), str(tmp_path / "bad.csv")])
    assert result.exit_code != 0
    assert "missing column(s) TX_AMOUNT; nothing was written or stored" in result.output
