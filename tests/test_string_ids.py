"""Customer and terminal ids are opaque text of 1-64 characters (card tokens, merchant ids) on every
path — form, API, import, score-file, the review queue and my-data — and whole numbers are their
decimal text; the features depend only on which rows share an id."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from fraudapp.extensions import db
from fraudapp.ml.data import read_history
from fraudapp.models import FileJob, Prediction, Transaction
from fraudapp.services.transactions import file_jobs, files, history, scoring
from tests.conftest import after_history, login

CUSTOMER, TERMINAL = "cus_8f2aQ", "MID-00042"
BAD_IDS = ["", "   ", "x" * 65, "cus\x01", "MID\n42", "ca\u0085fe"]


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def _tx(**overrides) -> dict:
    body = {
        "tx_datetime": after_history(),
        "customer_id": CUSTOMER,
        "terminal_id": TERMINAL,
        "amount": 42.5,
        "consent": True,
    }
    return body | overrides


def _tokens(frame: pd.DataFrame) -> pd.DataFrame:
    """The same history with every id replaced by a token, one token per id (1:1)."""
    tokens = frame.copy()
    tokens["CUSTOMER_ID"] = [f"cus_{c:05d}Zq" for c in frame["CUSTOMER_ID"]]
    tokens["TERMINAL_ID"] = [f"MID-{t:05d}" for t in frame["TERMINAL_ID"]]
    return tokens


# --- API -----------------------------------------------------------------------------------------


def test_api_scores_and_stores_text_ids(client, auth, stored_history):
    response = client.post("/api/v1/predictions", json=_tx(), headers=auth)
    assert response.status_code == 201, response.get_json()
    transaction = db.session.get(Prediction, response.get_json()["id"]).transaction
    assert (transaction.customer_id, transaction.terminal_id) == (CUSTOMER, TERMINAL)


def test_an_integer_and_its_text_are_the_same_customer(client, auth, stored_history):
    """42 then "42": the second sees the first in its customer's 1-day window."""
    url = "/api/v1/predictions?explain=true"
    first = client.post(url, json=_tx(customer_id=42, terminal_id=7), headers=auth).get_json()
    second = client.post(
        url,
        json=_tx(customer_id="42", terminal_id="7", tx_datetime=after_history(1.01)),
        headers=auth,
    ).get_json()
    window = "CUSTOMER_ID_NB_TX_1DAY_WINDOW"
    assert second["features"][window] == first["features"][window] + 1
    stored = db.session.scalars(
        select(Transaction.customer_id).where(Transaction.source == "predict")
    ).all()
    assert stored == ["42", "42"]


def test_surrounding_whitespace_is_stripped(client, auth, stored_history):
    body = client.post(
        "/api/v1/predictions", json=_tx(customer_id=f"  {CUSTOMER}\t"), headers=auth
    ).get_json()
    assert db.session.get(Prediction, body["id"]).transaction.customer_id == CUSTOMER


@pytest.mark.parametrize("bad", [*BAD_IDS, True, 1.5, None, ["a"], 10**64])
@pytest.mark.parametrize("field", ["customer_id", "terminal_id"])
def test_bad_ids_are_400_with_a_field_error_and_nothing_stored(client, auth, field, bad):
    response = client.post("/api/v1/predictions", json=_tx(**{field: bad}), headers=auth)
    assert response.status_code == 400
    assert list(response.get_json()["errors"]) == [field]
    assert _count(Transaction) == 0


def test_a_64_character_id_is_accepted(client, auth):
    response = client.post("/api/v1/predictions", json=_tx(customer_id="é" * 64), headers=auth)
    assert response.status_code == 201
    assert db.session.scalar(select(Transaction.customer_id)) == "é" * 64


def test_a_list_mixes_integers_and_text_and_a_bad_id_refuses_it_whole(client, auth, stored_history):
    items = [
        _tx(customer_id=5, terminal_id="T-1"),
        _tx(customer_id="cus_A", terminal_id=9, tx_datetime=after_history(1.01)),
    ]
    response = client.post("/api/v1/predictions", json={"transactions": items}, headers=auth)
    assert response.status_code == 201 and len(response.get_json()["predictions"]) == 2
    stored = db.session.execute(
        select(Transaction.customer_id, Transaction.terminal_id)
        .where(Transaction.source == "predict")
        .order_by(Transaction.id)
    ).all()
    assert [tuple(row) for row in stored] == [("5", "T-1"), ("cus_A", "9")]
    before = _count(Transaction)
    items.append(_tx(terminal_id="x" * 65))
    response = client.post("/api/v1/predictions", json={"transactions": items}, headers=auth)
    assert response.status_code == 400
    assert list(response.get_json()["errors"]) == ["transactions.2.terminal_id"]
    assert _count(Transaction) == before


# --- the form, the review queue and my-data ------------------------------------------------------


def _form(**overrides) -> dict:
    data = {
        "tx_datetime": after_history()[:16],
        "customer_id": f" {CUSTOMER} ",
        "terminal_id": TERMINAL,
        "amount": "42.50",
        "consent": "y",
    }
    return data | overrides


def test_form_stores_text_ids_shown_on_my_data_and_in_the_review_queue(client, users):
    response = client.post("/", data=_form())
    assert response.status_code == 302
    page = client.get("/result").text
    assert CUSTOMER in page and TERMINAL in page
    code = page.split('id="receipt">')[1].split("<")[0]
    assert db.session.execute(select(Transaction.customer_id, Transaction.terminal_id)).one() == (
        CUSTOMER,
        TERMINAL,
    )
    mine = client.get(f"/my-data/{code}").text
    assert f"<td>{CUSTOMER}</td>" in mine and f"<td>{TERMINAL}</td>" in mine
    login(client, users["analyst"])
    queue = client.get("/review").text
    assert f"<td>{CUSTOMER}</td><td>{TERMINAL}</td>" in queue


def test_an_id_with_markup_is_shown_as_text(client, users):
    client.post("/", data=_form(customer_id="<b>x</b>"))
    login(client, users["analyst"])
    queue = client.get("/review").text
    assert "&lt;b&gt;x&lt;/b&gt;" in queue and "<b>x</b>" not in queue


@pytest.mark.parametrize("bad", BAD_IDS)
def test_form_refuses_bad_ids_with_a_field_error(client, bad):
    response = client.post("/", data=_form(terminal_id=bad))
    assert response.status_code == 400
    assert response.text.count("invalid-feedback") == 1
    assert (
        "Enter the terminal id." in response.text
        or "Use 1 to 64 characters." in response.text
        or "Remove the control characters." in response.text
    )
    assert _count(Transaction) == 0


# --- import and score-file -----------------------------------------------------------------------


def _csv(rows: list[tuple]) -> str:
    lines = ["TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD"]
    lines += [",".join(map(str, row)) for row in rows]
    return "\n".join(lines) + "\n"


def test_import_stores_text_ids_and_scoring_sees_their_history(app, tmp_path):
    source = tmp_path / "tokens.csv"
    source.write_text(
        _csv(
            [
                ("a", "2018-05-10 10:00:00", CUSTOMER, TERMINAL, 10.0, 0),
                ("b", "2018-05-10 11:00:00", f" {CUSTOMER} ", "MID-7", 20.0, 1),
                ("c", "2018-05-10 12:00:00", '"cus,with comma"', TERMINAL, 30.0, ""),
                ("d", "2018-05-10 13:00:00", 42, 7, 40.0, 0),
            ]
        )
    )
    result = history.import_transactions(source)
    assert (result.inserted, result.labels) == (4, 3)
    stored = db.session.execute(
        select(Transaction.customer_id, Transaction.terminal_id).order_by(Transaction.id)
    ).all()
    assert [tuple(row) for row in stored] == [
        (CUSTOMER, TERMINAL),
        (CUSTOMER, "MID-7"),
        ("cus,with comma", TERMINAL),
        ("42", "7"),
    ]
    when = dt.datetime(2018, 5, 10, 14)
    scored = scoring.score(scoring.TransactionIn(when, CUSTOMER, "T", 5.0), consent=False)
    assert scored.features["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 3  # its two rows and itself


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("x" * 65, "line 2: CUSTOMER_ID: Use 1 to 64 characters."),
        ("   ", "line 2: CUSTOMER_ID: Use 1 to 64 characters."),
        ('"a\x01b"', "line 2: CUSTOMER_ID: Remove the control characters."),
    ],
)
def test_import_refuses_a_bad_id_by_its_line(app, tmp_path, value, message):
    source = tmp_path / "bad.csv"
    source.write_text(_csv([("a", "2018-05-10 10:00:00", value, TERMINAL, 10.0, 0)]))
    with pytest.raises(history.ImportRefused, match=message):
        history.import_transactions(source)
    assert _count(Transaction) == 0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "line 4: CUSTOMER_ID: Use 1 to 64 characters."),
        ("x" * 65, "line 4: CUSTOMER_ID: Use 1 to 64 characters."),
        ("ca\u0085fe", "line 4: CUSTOMER_ID: Remove the control characters."),
        ('"MID\n42"', "line 4: CUSTOMER_ID: Remove the control characters."),
    ],
)
def test_a_bad_id_among_plain_ones_is_refused_by_its_line(app, tmp_path, value, message):
    """The checks' fast path over a column of plain ids still finds one bad id among them."""
    rows = [(f"t{i}", f"2018-05-10 1{i}:00:00", CUSTOMER, TERMINAL, 10.0, 0) for i in range(4)]
    rows[2] = (*rows[2][:2], value, *rows[2][3:])
    source = tmp_path / "bad.csv"
    source.write_text(_csv(rows))
    with pytest.raises(history.ImportRefused, match=message):
        history.import_transactions(source)


def _tokens_file(stored_history) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The last days of the simulated history, scored as a file with int ids and with tokens."""
    later = stored_history[stored_history["TX_DATETIME"] >= "2018-05-13"].copy()
    later["TRANSACTION_ID"] = [f"f-{i}" for i in range(len(later))]
    return later, _tokens(later)


def test_score_file_with_text_ids_equals_the_same_file_with_integers(
    app, stored_history, tmp_path, monkeypatch
):
    """Same stored history twice (integers, then tokens 1:1): the file's scores are equal, and its
    output carries the ids as given."""
    monkeypatch.setattr(files, "CHUNK_ROWS", 700)  # several chunks: codes carried between them
    early = stored_history[stored_history["TX_DATETIME"] < "2018-05-13"]
    later, later_tokens = _tokens_file(stored_history)
    runs = {}
    for name, stored, scored in (
        ("ints", early, later),
        ("tokens", _tokens(early), later_tokens),
    ):
        db.session.execute(Prediction.__table__.delete())
        db.session.execute(Transaction.__table__.delete())
        db.session.commit()
        history.import_handbook_frame(stored, "simulate")
        source, out = tmp_path / f"{name}.csv", tmp_path / f"{name}.scored.csv"
        scored.to_csv(source, index=False)
        files.score_file(source, out)
        runs[name] = pd.read_csv(out, dtype={"CUSTOMER_ID": str, "TERMINAL_ID": str})
    assert runs["tokens"]["CUSTOMER_ID"].tolist() == later_tokens["CUSTOMER_ID"].tolist()
    assert runs["tokens"]["TERMINAL_ID"].tolist() == later_tokens["TERMINAL_ID"].tolist()
    np.testing.assert_allclose(runs["tokens"]["score"], runs["ints"]["score"], rtol=0, atol=1e-12)
    assert runs["ints"]["is_fraud"].sum() > 0


def test_score_a_file_page_stores_text_ids(client, users):
    login(client, users["analyst"])
    content = _csv(
        [
            (f"f{i}", f"2018-05-16 10:0{i}:00", f"cus_{i % 2}", f"MID-{i % 3}", 12.5, "")
            for i in range(6)
        ]
    )
    data = {"file": (io.BytesIO(content.encode()), "tokens.csv"), "store": "y"}
    assert client.post("/files", data=data, content_type="multipart/form-data").status_code == 303
    assert file_jobs.work_once().status == "done"
    stored = db.session.scalars(select(Transaction.customer_id).order_by(Transaction.id)).all()
    assert stored == [f"cus_{i % 2}" for i in range(6)]
    job = db.session.scalar(select(FileJob))
    download = client.get(f"/files/{job.key}/download")
    rows = list(csv.DictReader(io.StringIO(gzip.decompress(download.data).decode())))
    download.close()
    assert [row["TERMINAL_ID"] for row in rows] == [f"MID-{i % 3}" for i in range(6)]


# --- features: the same for integer ids and tokens mapping 1:1 ----------------------------------


def test_training_features_are_the_same_for_integers_and_tokens(app, simulated_frame, tmp_path):
    """The whole history's features (training) and a Handbook-format file's, ids as integers or
    as tokens 1:1, are equal."""
    by_run = []
    for frame in (simulated_frame, _tokens(simulated_frame)):
        db.session.execute(Transaction.__table__.delete())
        db.session.commit()
        history.import_handbook_frame(frame, "simulate")
        path = tmp_path / "history.csv"
        frame.to_csv(path, index=False)
        by_run.append((history.load_history().features(), read_history(path)[1].features()))
    (stored_ints, file_ints), (stored_tokens, file_tokens) = by_run
    np.testing.assert_array_equal(stored_tokens, stored_ints)
    np.testing.assert_array_equal(file_tokens, file_ints)
    np.testing.assert_array_equal(file_ints, stored_ints)


def test_online_features_are_the_same_for_integers_and_tokens(app, simulated_frame):
    """A list scored on the integer history and the same list with tokens on the token history:
    the same features and scores, row by row."""
    later = simulated_frame[simulated_frame["TX_DATETIME"] >= "2018-05-12"].head(400)
    results = []
    for frame, items in ((simulated_frame, later), (_tokens(simulated_frame), _tokens(later))):
        db.session.execute(Prediction.__table__.delete())
        db.session.execute(Transaction.__table__.delete())
        db.session.commit()
        history.import_handbook_frame(frame[frame["TX_DATETIME"] < "2018-05-12"], "simulate")
        inputs = [
            (
                scoring.TransactionIn(
                    dt.datetime.fromisoformat(str(row.TX_DATETIME)),
                    row.CUSTOMER_ID,
                    row.TERMINAL_ID,
                    float(row.TX_AMOUNT),
                ),
                k % 2 == 0,
            )
            for k, row in enumerate(items.itertuples())
        ]
        results.append(scoring.score_batch(inputs, want_explanation=False))
    for ints, tokens in zip(*results, strict=True):
        assert tokens.features == ints.features and tokens.score == ints.score


def test_simulate_can_name_ids_like_tokens(runner, tmp_path):
    args = ["simulate", "--customers", "30", "--terminals", "60", "--days", "3", "--text-ids"]
    result = runner.invoke(args=[*args, "--output", str(tmp_path / "sim.csv")])
    assert result.exit_code == 0, result.output
    written = pd.read_csv(tmp_path / "sim.csv")
    assert written["CUSTOMER_ID"].str.fullmatch(r"cus_\d{6}").all()
    assert written["TERMINAL_ID"].str.fullmatch(r"MID-\d{5}").all()
    assert runner.invoke(args=args).exit_code == 0
    stored = set(db.session.scalars(select(Transaction.customer_id)))
    assert stored and all(c.startswith("cus_") for c in stored)
