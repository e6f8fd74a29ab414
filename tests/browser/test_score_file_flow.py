"""End to end: an analyst uploads a small CSV on Score a file, watches the job finish without
reloading (the gunicorn workers' file-job threads run it), and downloads the scored file."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROWS = 20


def _csv(path) -> None:
    lines = ["TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT"]
    lines += [f"web{i},2018-05-16 10:{i:02d}:00,{i % 4},{i % 9},{12.5 + i}" for i in range(ROWS)]
    path.write_text("\n".join(lines) + "\n")


def test_upload_watch_and_download(page, login, tmp_path):
    source = tmp_path / "browser.csv"
    _csv(source)
    login(page, "analyst")
    page.goto("/")
    with page.expect_navigation():
        page.click("a.nav-link:has-text('Score a file')")
    assert page.title().startswith("Score a file")
    page.set_input_files("#file", str(source))
    with page.expect_navigation():
        page.click("#submit")
    assert "/files/" in page.url

    # the page polls and reloads itself when the job ends: no reload from the test
    page.wait_for_selector("#summary", timeout=60_000)
    assert page.inner_text("#job-status").strip() == "done"
    assert page.inner_text("#summary").split("Rows")[1].split()[0] == str(ROWS)
    assert page.locator("#histogram tbody tr").count() == 10

    with page.expect_download() as download:
        page.click("#download")
    assert download.value.suggested_filename == "browser.scored.csv.gz"
    text = gzip.decompress(Path(download.value.path()).read_bytes()).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [
        row["TRANSACTION_ID"] for row in sorted(rows, key=lambda r: int(r["TRANSACTION_ID"][3:]))
    ] == [f"web{i}" for i in range(ROWS)]
    assert {"score", "is_fraud", "threshold", "model_version", "reasons"} <= set(rows[0])

    page.goto("/files")
    assert "browser.csv" in page.inner_text("#jobs")
