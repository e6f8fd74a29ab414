"""Fuzz: the API and every form get generated bad input (huge, negative, NaN and infinite
numbers, control characters, very long strings, wrong types, nested JSON, absurd dates) and never
answer 5xx; where the input is refused, stored data is unchanged."""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from fraudapp.extensions import db
from fraudapp.models import Label, Prediction, Transaction, WebhookEndpoint
from fraudapp.services import serving
from tests.conftest import login, predict

pytestmark = pytest.mark.slow

FUZZ = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)

NASTY = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "a\x00b",
        "\r\n",
        "\x1b[2J",
        "%00",
        "' OR 1=1 --",
        "<script>alert(1)</script>",
        '=HYPERLINK("x")',
        "NaN",
        "-NaN",
        "sNaN",
        "inf",
        "-Infinity",
        "1e309",
        "-1e309",
        "1e-400",
        "9" * 29,
        "9" * 309,
        "9" * 5000,
        "-1",
        "0x10",
        "1_000",
        "١٢",
        "１２",
        "x" * 10_000,
        "0001-01-01",
        "9999-12-31",
        "2099-12-31T23:59",
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00+01:00",
        "0000-00-00",
        "2018-02-30",
        "99999999999999999999",
        "true",
        "null",
        "[]",
        "{}",
    ]
)
NUMBERS = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
)
DATES = st.one_of(
    st.dates().map(str),
    st.datetimes().map(lambda d: d.isoformat(timespec="minutes")),
    st.datetimes(
        timezones=st.sampled_from([dt.timezone(dt.timedelta(hours=h)) for h in (-23, -1, 1, 23)])
    ).map(dt.datetime.isoformat),
)
TEXT = st.one_of(NASTY, NUMBERS, DATES, st.text(max_size=30))  # st.text holds NUL and controls
FORM_VALUE = st.one_of(TEXT, st.lists(TEXT, min_size=2, max_size=3))  # a key given twice
JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**80), max_value=2**80),
        st.floats(allow_nan=True, allow_infinity=True),
        TEXT,
        st.text(alphabet=st.characters(categories=["Cs", "Cc"]), max_size=5),  # lone surrogates
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _valid_tx() -> dict:
    return {
        "tx_datetime": "2018-05-16T12:00:00",
        "customer_id": 12,
        "terminal_id": 40,
        "amount": 42.5,
        "consent": True,
    }


TX_BODY = st.builds(
    lambda base, bad, extra: base | bad | extra,
    st.just(_valid_tx()),
    st.dictionaries(
        st.sampled_from(
            ["tx_datetime", "customer_id", "terminal_id", "amount", "consent", "transaction_id"]
        ),
        JSON,
        min_size=1,
        max_size=3,
    ),
    st.dictionaries(st.text(max_size=8), JSON, max_size=2),
)
FORM = st.dictionaries(
    st.sampled_from(["tx_datetime", "customer_id", "terminal_id", "amount", "consent"]),
    FORM_VALUE,
    min_size=1,
    max_size=5,
)


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def _stored() -> tuple[int, ...]:
    db.session.expire_all()
    return tuple(_count(m) for m in (Transaction, Prediction, Label, WebhookEndpoint))


def _send(client, sent, target: str, method: str, url: str, **kwargs):
    sent[target] += 1
    response = client.open(url, method=method, **kwargs)
    assert response.status_code < 500, (method, url, kwargs, response.status_code)
    return response


def _valid_form() -> dict:
    return {
        "tx_datetime": "2018-05-16T12:00",
        "customer_id": "12",
        "terminal_id": "40",
        "amount": "42.50",
        "consent": "y",
    }


def test_api_predictions(client, auth, sent):
    @FUZZ
    @given(body=st.one_of(TX_BODY, JSON, st.builds(lambda t: {"transactions": t}, JSON)))
    def single_or_batch(body):
        before = _stored()
        response = _send(
            client, sent, "api", "POST", "/api/v1/predictions", json=body, headers=auth
        )
        if response.status_code != 201:
            assert _stored() == before

    @FUZZ
    @given(items=st.lists(TX_BODY, min_size=1, max_size=3))
    def batch(items):
        before = _stored()
        body = {"transactions": [_valid_tx(), *items]}
        response = _send(
            client, sent, "api", "POST", "/api/v1/predictions", json=body, headers=auth
        )
        if response.status_code != 201:
            assert _stored() == before

    @FUZZ
    @given(raw=st.binary(max_size=200))
    def raw_body(raw):
        before = _stored()
        headers = auth | {"Content-Type": "application/json"}
        _send(client, sent, "api", "POST", "/api/v1/predictions", data=raw, headers=headers)
        assert _stored() == before

    single_or_batch()
    batch()
    raw_body()


def test_api_feedback(client, auth, sent):
    known = predict(client, auth)["id"]

    @FUZZ
    @given(
        ident=st.one_of(st.just(str(known)), TEXT, st.integers(min_value=-1, max_value=2**80)),
        body=st.one_of(JSON, st.fixed_dictionaries({}, optional={"correct": JSON, "label": JSON})),
    )
    def feedback(ident, body):
        before = _stored()
        url = f"/api/v1/predictions/{quote(str(ident), safe='')}/feedback"
        response = _send(client, sent, "api", "POST", url, json=body, headers=auth)
        if response.status_code != 201:
            assert _stored() == before

    feedback()


def test_public_forms(client, auth, sent):
    receipt = predict(client, auth)["receipt"]

    @FUZZ
    @given(data=st.builds(lambda bad: _valid_form() | bad, FORM))
    def transaction_form(data):
        before = _stored()
        response = _send(client, sent, "forms", "POST", "/", data=data)
        if response.status_code != 302:
            assert _stored() == before

    @FUZZ
    @given(
        code=st.one_of(st.just(receipt), TEXT),
        action=st.sampled_from(["", "/feedback", "/delete"]),
        data=st.dictionaries(st.sampled_from(["correct", "wrong", "delete"]), FORM_VALUE),
    )
    def my_data(code, action, data):
        before = _stored()
        url = f"/my-data/{quote(code, safe='')}{action}"
        method = "POST" if action else "GET"
        response = _send(client, sent, "forms", method, url, data=data)
        if response.status_code >= 400:
            assert _stored() == before

    @FUZZ
    @given(data=st.dictionaries(st.sampled_from(["username", "password"]), FORM_VALUE))
    def login_form(data):
        before = _stored()
        _send(client.application.test_client(), sent, "forms", "POST", "/login", data=data)
        assert _stored() == before

    transaction_form()
    my_data()
    login_form()


def _query() -> st.SearchStrategy:
    keys = [
        "status",
        "decision",
        "date_from",
        "date_to",
        "score_min",
        "score_max",
        "model_version",
        "page",
        "start",
        "end",
        "granularity",
        "target_precision",
        "actor",
        "action",
        "since",
        "until",
    ]
    return st.dictionaries(st.sampled_from(keys), FORM_VALUE, max_size=6)


def test_logged_in_forms(client, auth, users, sent):
    for _ in range(3):
        predict(client, auth)
    ids = [str(p) for p in db.session.scalars(select(Prediction.id))]
    login(client, "admin")

    @FUZZ
    @given(
        path=st.sampled_from(["/review", "/admin/", "/admin/threshold", "/admin/audit"]),
        query=_query(),
    )
    def filters(path, query):
        before = _stored()
        _send(client, sent, "forms", "GET", path, query_string=query)
        assert _stored() == before

    @FUZZ
    @given(
        data=st.fixed_dictionaries(
            {},
            optional={
                "ids": st.lists(st.one_of(st.sampled_from(ids), TEXT), max_size=3),
                "row": st.one_of(st.sampled_from([f"{i}:fraud" for i in ids]), TEXT),
                "next": TEXT,
                "fraud": TEXT,
                "genuine": TEXT,
            },
        )
    )
    def label(data):
        before = _stored()
        _send(client, sent, "forms", "POST", "/review/label", data=data)
        with client.session_transaction() as session:
            flashes = session.pop("_flashes", [])
        if any(category == "error" for category, _ in flashes):
            assert _stored() == before

    @FUZZ
    @given(value=FORM_VALUE)
    def set_threshold(value):
        before = serving.serving_threshold("v1", 0.5)
        response = _send(
            client, sent, "forms", "POST", "/admin/threshold", data={"threshold": value}
        )
        if response.status_code != 302:
            assert serving.serving_threshold("v1", 0.5) == before

    @FUZZ
    @given(data=st.dictionaries(st.sampled_from(["url", "secret"]), FORM_VALUE, min_size=1))
    def add_node(data):
        before = _stored()
        response = _send(client, sent, "forms", "POST", "/admin/nodes", data=data)
        if response.status_code != 302:
            assert _stored() == before

    filters()
    label()
    set_threshold()
    add_node()
