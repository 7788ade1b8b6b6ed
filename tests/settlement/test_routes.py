"""The settlement pages as finance staff use them: quarter overview and contract tariffs."""

from __future__ import annotations

import datetime as dt
import re

import httpx
import pytest
from sqlalchemy import select

from keerpunt.platform.i18n import AMSTERDAM
from keerpunt.platform.runtime import Runtime
from keerpunt.settlement.models import Contract
from keerpunt.settlement.service import quarter_of
from tests.helpers import login
from tests.settlement.factories import Region, build_region
from tests.settlement.test_service import make_quarter

pytestmark = pytest.mark.anyio

D = dt.date


async def as_finance(client: httpx.AsyncClient, rt: Runtime) -> tuple[Region, str]:
    region = await build_region(rt)
    csrf = await login(client, rt, user_id=region.finance.id)
    return region, csrf


async def contracts_in_db(rt: Runtime) -> list[Contract]:
    async with rt.sessionmaker() as db:
        return list((await db.scalars(select(Contract).order_by(Contract.id))).all())


def text_of(html: str) -> str:
    """The page as a reader sees it (tags dropped, spaces joined)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("\xa0", " ")


# ---- quarter overview ----


async def test_finance_sees_the_quarter_per_provider(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    region, _ = await as_finance(client, runtime)
    cases = await make_quarter(runtime, region)
    r = await client.get("/settlement/quarter", params={"q": "2026K3"})
    assert r.status_code == 200
    assert '<table class="kp-table">' in r.text
    assert '<div class="kp-table-wrap">' in r.text
    assert '<th scope="col"' in r.text
    page = text_of(r.text)
    assert "Kwartaal 3 van 2026" in page
    assert "Horizon · AGB-code 98000011" in page
    assert cases["a"] in page and cases["b"] in page
    assert cases["open"] not in page and cases["before"] not in page
    assert "€ 100,00 per uur" in page and "€ 105,00 per uur" in page
    assert "Totaal Horizon € 2.694,29" in page
    assert "Totaal Altra € 784,29" in page
    assert "€ 90,00 per uur (1 aug tot en met 30 sep)" in page  # July has no tariff
    assert "Totaal alle aanbieders: € 3.478,58" in page
    assert "Geen contracttarief voor 45A52 bij Altra" in page
    assert "1 juli 2026 tot en met 31 juli 2026" in page
    assert "kan nog niet uit uren per week worden berekend" in page
    assert 'class="kp-notice"' in r.text
    assert "<script" not in r.text.split("</head>")[1]
    assert "style=" not in r.text


async def test_default_is_the_current_quarter_in_amsterdam(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await as_finance(client, runtime)
    r = await client.get("/settlement/quarter")
    assert r.status_code == 200
    now = quarter_of(dt.datetime.now(AMSTERDAM).date())
    assert f"Kwartaal {now.q} van {now.year}" in text_of(r.text)
    assert "In dit kwartaal lopen geen vastgestelde arrangementen." in text_of(r.text)


async def test_bad_quarter_is_explained(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await as_finance(client, runtime)
    r = await client.get("/settlement/quarter", params={"q": "derde kwartaal"})
    assert r.status_code == 400
    assert "Kies een kwartaal zoals 2026K3." in r.text
    assert 'aria-invalid="true"' in r.text


async def test_htmx_gets_only_the_fragment(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await as_finance(client, runtime)
    r = await client.get(
        "/settlement/quarter", params={"q": "2026Q3"}, headers={"HX-Request": "true"}
    )
    assert r.status_code == 200
    assert r.text.lstrip().startswith('<div id="kp-quarter">')
    assert "<html" not in r.text
    # a history restore needs the whole page
    r = await client.get(
        "/settlement/quarter",
        params={"q": "2026Q3"},
        headers={"HX-Request": "true", "HX-History-Restore-Request": "true"},
    )
    assert "<html" in r.text


@pytest.mark.parametrize("path", ["/settlement/quarter", "/settlement/contracts"])
async def test_who_may_not_see_settlement(
    client: httpx.AsyncClient, runtime: Runtime, path: str
) -> None:
    region = await build_region(runtime)
    r = await client.get(path)
    assert r.status_code == 303  # not logged in: to the login page
    await login(client, runtime, user_id=region.coordinator.id)
    assert (await client.get(path)).status_code == 403  # not finance
    await login(client, runtime, user_id=region.other_finance.id)
    r = await client.get(path)
    assert r.status_code == 403  # finance, but not of the penvoerder
    assert "U mag dit niet doen of inzien." in r.text


# ---- contracts ----

FORM = {
    "product_category": "45",
    "product_code": "45a52",
    "description": "Ambulante jeugdhulp",
    "unit": "04",
    "tariff": "120,00",
    "valid_from": "2026-01-01",
    "valid_to": "2026-12-31",
}


async def test_add_contract_with_euros(client: httpx.AsyncClient, runtime: Runtime) -> None:
    region, csrf = await as_finance(client, runtime)
    r = await client.get("/settlement/contracts")
    assert r.status_code == 200
    assert "Er zijn nog geen contracttarieven." in r.text
    assert f'<option value="{region.horizon.id}">Horizon (98000011)</option>' in r.text

    r = await client.post(
        "/settlement/contracts",
        data={**FORM, "provider_id": str(region.horizon.id)},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 303
    [saved] = await contracts_in_db(runtime)
    assert (saved.product_code, saved.tariff_cents, saved.unit) == ("45A52", 12_000, "04")

    r = await client.get(r.headers["location"])
    page = text_of(r.text)
    assert "Het tarief is opgeslagen: 45A52 bij Horizon, € 120,00 per uur." in page
    assert "Horizon 45 / 45A52 Ambulante jeugdhulp € 120,00 04 uur" in page


async def test_add_contract_with_htmx_returns_the_fragment(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    region, csrf = await as_finance(client, runtime)
    r = await client.post(
        "/settlement/contracts",
        data={**FORM, "provider_id": str(region.altra.id), "tariff": "87", "valid_to": ""},
        headers={"X-CSRF-Token": csrf, "HX-Request": "true"},
    )
    assert r.status_code == 200
    assert r.text.lstrip().startswith('<div id="kp-contracts">')
    assert "Het tarief is opgeslagen" in r.text
    [saved] = await contracts_in_db(runtime)
    assert (saved.tariff_cents, saved.valid_to) == (8_700, None)


async def test_bad_contract_input_is_shown_per_field(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    region, csrf = await as_finance(client, runtime)
    r = await client.post(
        "/settlement/contracts",
        data={
            **FORM,
            "provider_id": str(region.horizon.id),
            "tariff": "honderd",
            "product_code": "45A",
            "valid_to": "2025-01-01",
        },
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 422
    assert "Vul een bedrag in euro's in, zoals 120,00." in r.text
    assert "Vul een productcode van 5 tekens in, zoals 45A52." in r.text
    assert "De einddatum ligt vóór de begindatum." in r.text
    assert (
        'id="kp-tariff"' in r.text and 'aria-describedby="kp-tariff-hint kp-tariff-error"' in r.text
    )
    assert 'value="honderd"' in r.text  # what was typed stays
    assert await contracts_in_db(runtime) == []


async def test_overlapping_contract_is_refused(client: httpx.AsyncClient, runtime: Runtime) -> None:
    region, csrf = await as_finance(client, runtime)
    data = {**FORM, "provider_id": str(region.horizon.id)}
    headers = {"X-CSRF-Token": csrf}
    assert (
        await client.post("/settlement/contracts", data=data, headers=headers)
    ).status_code == 303
    r = await client.post(
        "/settlement/contracts",
        data={**data, "valid_from": "2026-07-01", "valid_to": "", "tariff": "125"},
        headers=headers,
    )
    assert r.status_code == 422
    assert "Er is al een tarief voor dit product in deze periode." in r.text
    assert len(await contracts_in_db(runtime)) == 1


async def test_contract_post_needs_the_csrf_token(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    region, _ = await as_finance(client, runtime)
    r = await client.post(
        "/settlement/contracts", data={**FORM, "provider_id": str(region.horizon.id)}
    )
    assert r.status_code == 403
    r = await client.post(
        "/settlement/contracts",
        data={**FORM, "provider_id": str(region.horizon.id)},
        headers={"X-CSRF-Token": "not-the-token"},
    )
    assert r.status_code == 403
    assert await contracts_in_db(runtime) == []


async def test_only_finance_of_the_penvoerder_may_add(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    region = await build_region(runtime)
    for user in (region.coordinator, region.other_finance):
        csrf = await login(client, runtime, user_id=user.id)
        r = await client.post(
            "/settlement/contracts",
            data={**FORM, "provider_id": str(region.horizon.id)},
            headers={"X-CSRF-Token": csrf},
        )
        assert r.status_code == 403
    assert await contracts_in_db(runtime) == []


async def test_end_date_for_an_open_tariff(client: httpx.AsyncClient, runtime: Runtime) -> None:
    region, csrf = await as_finance(client, runtime)
    headers = {"X-CSRF-Token": csrf}
    data = {**FORM, "provider_id": str(region.horizon.id), "valid_to": ""}
    assert (
        await client.post("/settlement/contracts", data=data, headers=headers)
    ).status_code == 303
    [saved] = await contracts_in_db(runtime)
    page = (await client.get("/settlement/contracts")).text
    assert f'action="http://testserver/settlement/contracts/{saved.id}/end"' in page

    r = await client.post(
        f"/settlement/contracts/{saved.id}/end", data={"valid_to": "31-12-2025"}, headers=headers
    )
    assert r.status_code == 422
    assert "De einddatum ligt vóór de begindatum." in r.text
    assert f'id="kp-end-{saved.id}" name="valid_to" type="date" value="31-12-2025"' in r.text

    r = await client.post(
        f"/settlement/contracts/{saved.id}/end", data={"valid_to": "2026-12-31"}, headers=headers
    )
    assert r.status_code == 303
    [saved] = await contracts_in_db(runtime)
    assert saved.valid_to == D(2026, 12, 31)
