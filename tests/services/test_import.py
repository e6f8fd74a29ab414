"""Importing history: all or nothing, idempotent, labelled, with the bad line named."""

import datetime as dt
import gzip

import pytest
from sqlalchemy import func, select

from fraudapp.extensions import db
from fraudapp.models import Label, Transaction
from fraudapp.services.transactions.history import ImportRefused, import_transactions

HEADER = "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_TIME_SECONDS,TX_FRAUD\n"
ROWS = [
    "0,2018-04-01 00:00:31,596,3156,57.16,31,0\n",
    "1,2018-04-01 00:02:10,4961,3412,81.51,130,1\n",
    "2,2018-04-01 00:07:56,2,1365,146.0,476,0\n",
]


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def _write(path, rows, header=HEADER):
    path.write_text(header + "".join(rows))
    return path


def test_import_adds_transactions_and_imported_labels(app, tmp_path):
    result = import_transactions(_write(tmp_path / "a.csv", ROWS))
    assert (result.rows, result.inserted, result.labels) == (3, 3, 3)
    fraud = db.session.scalar(select(Transaction).where(Transaction.external_id == "1"))
    assert fraud.fraud is True and fraud.customer_id == "4961" and fraud.amount == 81.51
    assert fraud.tx_datetime.isoformat() == "2018-04-01T00:02:10"
    assert [label.source for label in fraud.labels] == ["import"]
    # an imported label is known at the Handbook's delay after its transaction
    assert fraud.labels[0].known_at == dt.datetime(2018, 4, 8, 0, 2, 10, tzinfo=dt.UTC)


def test_reimport_adds_nothing_twice(app, tmp_path):
    path = _write(tmp_path / "a.csv", ROWS)
    import_transactions(path)
    more = ROWS + ["3,2018-04-02 10:00:00,1,2,3.5,9,0\n"]
    again = import_transactions(_write(tmp_path / "b.csv", more))
    assert (again.inserted, again.skipped, again.labels) == (1, 3, 1)
    assert _count(Transaction) == 4 and _count(Label) == 4


def test_gzip_and_missing_labels(app, tmp_path):
    path = tmp_path / "a.csv.gz"
    header = "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT\n"
    with gzip.open(path, "wt") as handle:
        handle.write(header + "7,2018-04-01 00:00:31,5,6,10.0\n")
    assert import_transactions(path).labels == 0
    assert db.session.scalar(select(Transaction.fraud)) is None


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        ("9,2018-13-01 00:00:00,1,2,3.0,0,0\n", "line 5: TX_DATETIME"),
        ("9,2018-04-01 00:00:00, ,2,3.0,0,0\n", "line 5: CUSTOMER_ID"),
        (f"9,2018-04-01 00:00:00,1,{'T' * 65},3.0,0,0\n", "line 5: TERMINAL_ID"),
        ("9,2018-04-01 00:00:00,1,2,abc,0,0\n", "line 5: TX_AMOUNT"),
        ("9,2018-04-01 00:00:00,1,2,3.0,0,2\n", "line 5: TX_FRAUD"),
        ("1,2018-04-01 00:00:00,1,2,3.0,0,0\n", "line 5: TRANSACTION_ID appears twice"),
        (",2018-04-01 00:00:00,1,2,3.0,0,0\n", "line 5: TRANSACTION_ID"),
        ("9,2018-04-01 00:00:00,1,2\n", "line 5"),
    ],
)
def test_malformed_file_is_refused_whole(app, tmp_path, bad_row, message):
    import_transactions(_write(tmp_path / "ok.csv", ROWS[:1]))
    with pytest.raises(ImportRefused, match=message):
        import_transactions(_write(tmp_path / "bad.csv", ROWS + [bad_row]))
    assert _count(Transaction) == 1 and _count(Label) == 1


def test_missing_column_is_refused(app, tmp_path):
    with pytest.raises(ImportRefused, match="missing column.*TX_AMOUNT"):
        import_transactions(
            _write(
                tmp_path / "a.csv",
                ["0,2018-04-01,1,2\n"],
                header="TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID\n",
            )
        )


def test_not_a_csv_is_refused(app, tmp_path):
    path = tmp_path / "a.csv.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(ImportRefused, match="unreadable"):
        import_transactions(path)


def test_a_row_in_the_future_is_refused_with_its_line(app, tmp_path):
    tomorrow = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    for when in (f"{tomorrow:%Y-%m-%d %H:%M:%S}", "2099-12-31 00:00:00"):
        with pytest.raises(ImportRefused, match="line 5: TX_DATETIME: .*in the future"):
            import_transactions(_write(tmp_path / "bad.csv", ROWS + [f"9,{when},1,2,3.0,0,0\n"]))
    with pytest.raises(ImportRefused, match="line 3: TX_DATETIME: Use a date from 1990"):
        import_transactions(
            _write(tmp_path / "old.csv", ROWS[:1] + ["5,1989-12-31 23:59:59,1,2,3.0,0,0\n"])
        )
    with pytest.raises(ImportRefused, match="line 4: TRANSACTION_ID: Remove the control"):
        import_transactions(
            _write(tmp_path / "ctl.csv", ROWS[:2] + ["a\x01b,2018-04-02 10:00:00,1,2,3.5,9,0\n"])
        )
    assert _count(Transaction) == 0
