"""A provider's statement on the web a page of lines at a time: totals always of the whole
statement, links to the previous and next page, and a page that does not exist is "not found"
with a reason, never an error. The PDF and CSV stay whole."""

from __future__ import annotations

import io

import httpx
import pytest
from pypdf import PdfReader

from keerpunt.platform.runtime import Runtime
from keerpunt.settlement import statement_view
from keerpunt.settlement.statement_view import PageNotFound, StatementPage, statement_page
from tests.helpers import login
from tests.settlement.test_routes import text_of
from tests.settlement.test_statements import close, kassier_world

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("lines", "number", "page"),
    [
        (1, 1, StatementPage(1, 1, 1, 1, 1)),
        (200, 1, StatementPage(1, 1, 1, 200, 200)),
        (201, 1, StatementPage(1, 2, 1, 200, 201)),
        (201, 2, StatementPage(2, 2, 201, 201, 201)),
        (45_000, 225, StatementPage(225, 225, 44_801, 45_000, 45_000)),
    ],
)
def test_a_page_is_two_hundred_lines(lines: int, number: int, page: StatementPage) -> None:
    assert statement_page(lines, number) == page


@pytest.mark.parametrize(("lines", "number"), [(10, 0), (10, -1), (10, 2), (201, 3)])
def test_a_page_that_does_not_exist_is_not_found(lines: int, number: int) -> None:
    with pytest.raises(PageNotFound):
        statement_page(lines, number)


def test_previous_and_next() -> None:
    assert (statement_page(450, 1).previous, statement_page(450, 1).next) == (None, 2)
    assert (statement_page(450, 2).previous, statement_page(450, 2).next) == (1, 3)
    assert (statement_page(450, 3).previous, statement_page(450, 3).next) == (2, None)


async def test_the_page_shows_its_lines_and_the_totals_of_all(
    client: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = await kassier_world(runtime)  # Horizon: 2 lines, its own and Altra's
    await close(runtime, w)
    horizon = w.region.horizon.id
    await login(client, runtime, user_id=w.region.finance.id)
    url = f"/settlement/run/2026Q3/statement/{horizon}"
    whole = await client.get(url)
    assert whole.status_code == 200 and "Pagina 1 van" not in text_of(whole.text)

    monkeypatch.setattr(statement_view, "PAGE_SIZE", 1)
    first = await client.get(url)
    second = await client.get(f"{url}?page=2")
    assert first.status_code == second.status_code == 200
    one, two = text_of(first.text), text_of(second.text)
    assert "Regel 1 tot en met 1 van 2." in one and "Pagina 1 van 2" in one
    assert "Regel 2 tot en met 2 van 2." in two and "Pagina 2 van 2" in two
    assert "01-07-2026 – 31-07-2026 3 uur" in one and "01-08-2026" not in one
    assert "01-08-2026 – 31-08-2026 2 uur" in two and "01-07-2026 – 31-07-2026" not in two
    for page in (one, two):  # the totals and the kassier's split are of the whole statement
        assert "Totaal van het hele overzicht € 624,00" in page
        assert "U betaalt door aan onderaannemers € 233,13" in page
        assert "Altra € 249,60 € 16,47 € 233,13" in page
    assert f'{url}?page=2#kp-statement-lines"' in first.text and 'rel="prev"' not in first.text
    assert f'{url}?page=1#kp-statement-lines"' in second.text
    assert 'rel="next"' not in second.text

    # The PDF and the CSV stay whole.
    pdf = await client.get(f"{url}.pdf")
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "01-07-2026" in text and "01-08-2026" in text
    assert (await client.get(f"{url}.csv")).content.count(b"\r\n") == 4  # header, 2, total

    for bad in ("0", "-1", "3", "abc", "1.5", "²", "9" * 30):
        r = await client.get(url, params={"page": bad})
        assert r.status_code == 404, bad
        assert "Deze pagina van het overzicht bestaat niet." in text_of(r.text), bad
    assert (await client.get(f"{url}?page=")).status_code == 200  # empty: the first page


async def test_a_page_of_someone_elses_statement_tells_nothing(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await kassier_world(runtime)
    await close(runtime, w)
    await login(client, runtime, user_id=w.altra_staff.id)
    for page in ("1", "2", "0", "abc"):
        r = await client.get(
            f"/settlement/run/2026Q3/statement/{w.region.horizon.id}", params={"page": page}
        )
        assert r.status_code == 404
        assert "Deze pagina van het overzicht" not in text_of(r.text)
