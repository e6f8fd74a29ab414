"""The pages' languages: the catalog is complete, the language follows the switch or the browser,
numbers, dates and the amount field follow the language, the API stays English."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from flask_babel import refresh
from sqlalchemy import select

from fraudapp import templating
from fraudapp.extensions import db
from fraudapp.i18n import COOKIE
from fraudapp.models import TrainingRun, Transaction
from fraudapp.wording import feature_phrase, reason_text
from tests.conftest import after_history

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "fraudapp" / "translations" / "pt_BR" / "LC_MESSAGES"
PT = {"Accept-Language": "pt-BR,pt;q=0.9,en;q=0.5"}


def _extracted() -> set[str]:
    """The messages in the code and templates now, extracted as `make i18n` does."""
    with open(ROOT / "babel.cfg") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    keywords = DEFAULT_KEYWORDS | {"_l": None, "lazy_gettext": None, "Message": None}
    return {
        message[2] if isinstance(message[2], str) else message[2][0]
        for message in extract_from_dir(str(ROOT), method_map, options_map, keywords)
    }


def _catalog():
    with open(CATALOG / "messages.po", "rb") as po:
        return read_po(po, locale="pt_BR")


def test_every_message_has_a_portuguese_translation():
    catalog = _catalog()
    translated = {
        (m.id if isinstance(m.id, str) else m.id[0]): m
        for m in catalog
        if m.id
        and "fuzzy" not in m.flags
        and all(m.string if isinstance(m.string, tuple) else [m.string])
    }
    missing = sorted(_extracted() - set(translated))
    assert not missing, (
        f"messages without a pt_BR translation (run `make i18n`, translate): {missing}"
    )


def test_translations_keep_their_placeholders():
    problems = [(m.id, errors) for m, errors in _catalog().check() if errors]
    assert not problems


def _key(text):
    return text if isinstance(text, str) else tuple(text)


def test_the_compiled_catalog_matches_the_po_file():
    with open(CATALOG / "messages.mo", "rb") as mo:
        compiled = {_key(m.id): _key(m.string) for m in read_mo(mo) if m.id}
    written = {_key(m.id): _key(m.string) for m in _catalog() if m.id and "fuzzy" not in m.flags}
    assert compiled == written, "messages.mo is stale: run `make i18n`"


def _lang(page: str) -> str:
    return re.search(r'<html lang="([^"]+)">', page).group(1)


@pytest.mark.parametrize(
    ("accept", "lang", "heading"),
    [
        (None, "en", "Score a card transaction"),
        ("pt-BR,pt;q=0.9", "pt-BR", "Avaliar uma transação de cartão"),
        ("pt", "pt-BR", "Avaliar uma transação de cartão"),
        ("pt-PT,en;q=0.5", "pt-BR", "Avaliar uma transação de cartão"),
        ("de-DE,en-GB;q=0.8", "en", "Score a card transaction"),
        ("fr", "en", "Score a card transaction"),
    ],
)
def test_the_language_follows_accept_language(client, accept, lang, heading):
    headers = {"Accept-Language": accept} if accept else {}
    page = client.get("/", headers=headers).get_data(as_text=True)
    assert _lang(page) == lang and heading in page


def test_the_switch_sets_and_remembers_the_language(client):
    response = client.post("/language", data={"language": "pt_BR", "next": "/login?next=/review"})
    assert response.status_code == 302 and response.location == "/login?next=/review"
    cookie = client.get_cookie(COOKIE)
    assert cookie.value == "pt_BR" and cookie.max_age and cookie.max_age > 300 * 24 * 3600
    page = client.get("/login", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert _lang(page) == "pt-BR" and "Nome de usuário" in page and "Entrar" in page
    client.post("/language", data={"language": "en"})
    page = client.get("/", headers=PT).get_data(as_text=True)
    assert _lang(page) == "en" and "Score a card transaction" in page


def test_the_switch_ignores_unknown_languages_and_foreign_targets(client):
    response = client.post("/language", data={"language": "xx", "next": "https://evil.example/"})
    assert response.status_code == 302 and "evil" not in response.location
    assert client.get_cookie(COOKIE) is None


def test_the_switch_is_in_the_navigation_bar(client):
    page = client.get("/", headers=PT).get_data(as_text=True)
    switch = page[
        page.index('id="language-switch"') : page.index("</form>", page.index("language-switch"))
    ]
    assert 'value="en"' in switch and "English" in switch and "Português" in switch
    assert re.search(r'value="pt_BR"[^>]*class="[^"]*active', switch)


def test_a_logged_in_analyst_keeps_the_language(client, users):
    from tests.conftest import login

    client.post("/language", data={"language": "pt_BR"})
    login(client, "analyst")
    page = client.get("/review").get_data(as_text=True)
    assert "Fila de revisão" in page and "Nada a revisar com estes filtros." in page


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ({}, ("1,234.56", "12.3 %", "2026-03-05 14:07:09", "1,234")),
        (PT, ("1.234,56", "12,3 %", "05/03/2026 14:07:09", "1.234")),
    ],
)
def test_numbers_and_dates_follow_the_language(app, accept, expected):
    with app.test_request_context("/", headers=accept):
        refresh()  # the fixture's app context outlives one request
        shown = (
            templating.num(1234.56, 2),
            templating.pct(0.1234),
            templating.when(dt.datetime(2026, 3, 5, 14, 7, 9)),
            templating.count(1234),
        )
    assert shown == expected


def test_reasons_are_worded_in_the_language(app):
    with app.test_request_context("/", headers=PT):
        refresh()
        assert reason_text("TX_AMOUNT", 1234.5, True) == "o valor (1.234,50) aumentou o risco"
        assert feature_phrase("CUSTOMER_ID_NB_TX_7DAY_WINDOW") == (
            "o número de transações do cliente nos últimos 7 dias"
        )
        assert feature_phrase("TERMINAL_ID_RISK_1DAY_WINDOW").startswith("a taxa de fraudes")
    with app.test_request_context("/"):
        refresh()
        assert reason_text("TX_AMOUNT", 12, False) == "the amount (12) lowered the risk"
        assert feature_phrase("CUSTOMER_ID_NB_TX_1DAY_WINDOW") == (
            "the customer's number of transactions in the last day"
        )


def _form(amount: str) -> dict:
    return {
        "tx_datetime": after_history()[:16],
        "customer_id": "12",
        "terminal_id": "40",
        "amount": amount,
        "consent": "y",
    }


@pytest.mark.parametrize(("typed", "stored"), [("1.234,56", 1234.56), ("12,5", 12.5), ("7", 7.0)])
def test_the_amount_is_read_the_portuguese_way(client, stored_history, typed, stored):
    response = client.post("/", data=_form(typed), headers=PT)
    assert response.status_code == 302
    page = client.get("/result", headers=PT).get_data(as_text=True)
    assert (
        "Probabilidade de fraude" in page
        and "aumentou o risco" in page
        or "diminuiu o risco" in page
    )
    shown = templating_amount(stored, "pt_BR")
    assert f"<td>{shown}</td>" in page
    amounts = db.session.scalars(db.select(Transaction.amount).order_by(Transaction.id.desc()))
    assert amounts.first() == pytest.approx(stored)


def templating_amount(value: float, language: str) -> str:
    from babel.numbers import format_decimal

    return format_decimal(value, format="#,##0.00", locale=language)


@pytest.mark.parametrize(
    ("typed", "accept", "error"),
    [
        ("12.50", PT, "O valor decimal não é válido."),  # the dot groups thousands here
        ("doze", PT, "O valor decimal não é válido."),
        ("2.000.000", PT, "Use um valor de 0 a 1.000.000."),
        ("1,5", {}, "Not a valid decimal value."),
        ("1,234.567", {}, "Use at most two decimals."),
    ],
)
def test_a_badly_written_amount_is_a_field_error(client, typed, accept, error):
    response = client.post("/", data=_form(typed), headers=accept)
    assert response.status_code == 400
    assert error in response.get_data(as_text=True)


def test_the_english_amount_accepts_thousands_separators(client, stored_history):
    assert client.post("/", data=_form("1,234.56")).status_code == 302
    assert "<td>1,234.56</td>" in client.get("/result").get_data(as_text=True)


def test_error_pages_speak_the_language(client):
    page = client.get("/no-such-page", headers=PT).get_data(as_text=True)
    assert "404 · Não encontrado" in page and "Não há página neste endereço." in page
    assert "Not Found" in client.get("/no-such-page").get_data(as_text=True)


def test_the_api_stays_english(client, auth):
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).isoformat()
    body = {
        "tx_datetime": future,
        "customer_id": 1,
        "terminal_id": 2,
        "amount": 5,
        "consent": False,
    }
    response = client.post("/api/v1/predictions", json=body, headers=auth | PT)
    assert response.status_code == 400
    assert "it is in the future" in str(response.get_json()["errors"]["tx_datetime"])


def test_the_login_prompt_is_flashed_in_the_language(client):
    response = client.get("/review", headers=PT, follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "/login" in response.request.path and "Entre para abrir essa página." in page


def test_every_page_renders_in_portuguese(client, users, auth):
    from tests.conftest import login, predict

    predict(client, auth)  # a stored prediction: the queue, coverage and dashboard have a row
    login(client, "admin")
    client.post("/language", data={"language": "pt_BR"})
    client.post("/admin/runs")  # a queued training run, for its page
    run_id = db.session.scalar(select(TrainingRun.id))
    pages = {
        "/": "Avaliar uma transação de cartão",
        "/review": "Fila de revisão",
        "/review?status=all": "Por quê",
        "/review/coverage": "Cobertura de rótulos",
        "/files": "Seus arquivos recentes",
        "/admin/": "Matriz de confusão",
        "/admin/threshold": "Ajuste do limiar",
        "/admin/runs": "Versões do modelo",
        f"/admin/runs/{run_id}": f"Treinamento nº {run_id}",
        "/admin/nodes": "Entregas de webhook",
        "/admin/audit": "Log de auditoria",
    }
    for path, text in pages.items():
        response = client.get(path)
        page = response.get_data(as_text=True)
        assert response.status_code == 200 and text in page and _lang(page) == "pt-BR", path
