"""End to end in Brazilian Portuguese: a visitor switches the language in the navigation bar,
scores a transaction typed the Portuguese way, says the prediction was wrong; an analyst whose
browser asks for Portuguese finds it in the review queue and labels it; the visitor deletes it."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from tests.browser.conftest import accept_dialogs

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# A transaction no other browser test uses, so its row can be told apart in the queue.
CUSTOMER, TERMINAL, AMOUNT, SHOWN = "52817", "71302", "1.234,56", "1.234,56"
WORDS = {"fraud": "fraude", "genuine": "legítima"}
MAX_QUEUE_PAGES = 20


def _navigate(page, selector: str):
    """Click `selector` and wait for the page it leads to."""
    with page.expect_navigation() as navigation:
        page.click(selector)
    return navigation.value


def _queue_row(page):
    """Our transaction's row in the 'feedback' review queue (predictions since yesterday)."""
    since = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()
    for number in range(1, MAX_QUEUE_PAGES + 1):
        assert page.goto(f"/review?status=feedback&date_from={since}&page={number}").status == 200
        assert page.title().startswith("Fila de revisão")
        rows = page.locator("#queue tr[data-id]")
        for index in range(rows.count()):
            cells = [cell.strip() for cell in rows.nth(index).locator("td").all_inner_texts()]
            if cells[4:7] == [CUSTOMER, TERMINAL, SHOWN]:
                return rows.nth(index)
        if not page.locator(".pagination a.page-link", has_text=str(number + 1)).count():
            return None
    pytest.fail(f"the review queue has more than {MAX_QUEUE_PAGES} pages of feedback rows")


def test_the_feedback_flow_in_portuguese(page, new_page, login, live_server):
    base = live_server["url"]

    # 1. An English page; the switch in the navigation bar turns it Portuguese, and it stays so.
    page.goto("/")
    assert page.get_attribute("html", "lang") == "en"
    _navigate(page, "#language-switch button[value=pt_BR]")
    assert page.get_attribute("html", "lang") == "pt-BR"
    assert page.inner_text("h1") == "Avaliar uma transação de cartão"
    assert page.inner_text("label[for=amount]") == "Valor"
    assert "Guardar esta transação para melhorar o modelo" in page.inner_text("main form")

    # 2. A badly written amount is a field error in Portuguese; 1.234,56 is read as 1234.56.
    page.fill("#customer_id", CUSTOMER)
    page.fill("#terminal_id", TERMINAL)
    page.fill("#amount", "doze reais")
    _navigate(page, "#submit")
    assert "O valor decimal não é válido." in page.inner_text(".invalid-feedback")
    page.fill("#amount", AMOUNT)
    page.set_checked("#consent", True)
    _navigate(page, "#submit")
    assert page.url == base + "/result"
    decision = page.inner_text("#decision").strip()
    assert decision in ("Provável fraude", "Parece legítima")
    assert re.fullmatch(r"\d{1,3},\d %", page.inner_text("#score").strip())
    assert f"Valor\t{SHOWN}" in page.inner_text("#scored")
    reasons = page.locator("#reasons li").all_inner_texts()
    assert reasons and all(re.search(r"(aumentou|diminuiu) o risco$", r) for r in reasons)
    assert page.get_attribute("#wrong", "value") == "Errada"

    # 3. "Wrong": the receipt page thanks in Portuguese and shows the answer and the label.
    feedback = "genuine" if decision == "Provável fraude" else "fraud"
    analyst_label = "genuine" if feedback == "fraud" else "fraud"
    receipt = page.inner_text("#receipt").strip()
    _navigate(page, "#wrong")
    assert page.url == f"{base}/my-data/{receipt}"
    assert "Obrigado — sua resposta foi registrada." in page.inner_text(".alert-success")
    assert page.locator("#answers li").first.inner_text().endswith("— errada")
    assert page.inner_text("#label-now").strip() == f"{WORDS[feedback]} (retorno)"

    # 4. An analyst whose browser asks for Portuguese labels it from the review queue.
    analyst = new_page(locale="pt-BR")
    login(analyst, "analyst")
    row = _queue_row(analyst)
    assert row is not None, "the prediction with feedback is not in the review queue"
    assert row.locator(".label-cell").inner_text().strip() == f"{WORDS[feedback]} (retorno)"
    assert re.search(r"(aumentou|diminuiu) o risco", row.locator("td").nth(9).inner_text())
    prediction_id = row.get_attribute("data-id")
    button = f"button[name=row][value='{prediction_id}:{analyst_label}']"
    assert analyst.inner_text(f"#queue tr[data-id='{prediction_id}'] {button}") in (
        "Fraude",
        "Legítima",
    )
    _navigate(analyst, f"#queue tr[data-id='{prediction_id}'] {button}")
    flashed = analyst.inner_text(".alert-success")
    assert f"1 transação(ões) rotulada(s) como {WORDS[analyst_label]}" in flashed

    # 5. The visitor (still in Portuguese) sees the analyst's label and deletes the data.
    page.goto(f"/my-data/{receipt}")
    assert page.inner_text("#label-now").strip() == f"{WORDS[analyst_label]} (analista)"
    dialogs = accept_dialogs(page)
    _navigate(page, "#delete")
    assert dialogs == ["Excluir esta transação e tudo o que foi guardado sobre ela?"]
    assert "Seus dados foram excluídos." in page.inner_text(".alert-success")
    assert page.goto(f"/my-data/{receipt}").status == 404
    assert "Não encontrado" in page.inner_text("h1")
