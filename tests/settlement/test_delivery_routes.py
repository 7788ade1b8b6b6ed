"""The allocations page and the delivery form as a provider and the penvoerder use them."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from sqlalchemy import func, select

from keerpunt.platform.models import AuditEntry
from keerpunt.platform.runtime import Runtime
from keerpunt.settlement.models import Delivery
from keerpunt.settlement.service import add_allocation
from tests.helpers import login, make_user
from tests.settlement.factories import principal
from tests.settlement.test_records import World, allocation, build
from tests.settlement.test_routes import text_of

pytestmark = pytest.mark.anyio

D = dt.date
FORM = {
    "allocation_number": "T-100",
    "product_code": "45A52",
    "start": "2026-07-01",
    "end": "2026-07-31",
    "volume": "10",
}


async def with_allocation(rt: Runtime) -> World:
    w = await build(rt)
    async with rt.unit_of_work(principal(w.region.finance)) as uow:
        await add_allocation(uow, allocation(w))
    return w


async def deliveries(rt: Runtime) -> int:
    async with rt.sessionmaker() as db:
        return await db.scalar(select(func.count()).select_from(Delivery)) or 0


async def test_provider_sees_its_allocation_and_enters_care(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await with_allocation(runtime)
    csrf = await login(client, runtime, user_id=w.horizon_staff.id)
    r = await client.get("/settlement/allocations")
    assert r.status_code == 200
    page = text_of(r.text)
    assert "T-100" in page and "Gemeente Zwolle" in page
    assert "20 uur per maand" in page
    assert 'name="provider_id"' not in r.text  # a provider enters only for itself

    r = await client.post("/settlement/deliveries", data=FORM, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 303
    r = await client.get(r.headers["location"])
    assert "De geleverde zorg is opgeslagen: 10 × 45A52 onder toewijzing T-100" in text_of(r.text)
    assert await deliveries(runtime) == 1
    async with runtime.sessionmaker() as db:
        actions = list(await db.scalars(select(AuditEntry.action)))
    assert "settlement.delivery.add" in actions


async def test_htmx_gets_the_fragment(client: httpx.AsyncClient, runtime: Runtime) -> None:
    w = await with_allocation(runtime)
    csrf = await login(client, runtime, user_id=w.horizon_staff.id)
    r = await client.post(
        "/settlement/deliveries", data=FORM, headers={"X-CSRF-Token": csrf, "HX-Request": "true"}
    )
    assert r.status_code == 200
    assert r.text.lstrip().startswith('<div id="kp-allocations">')


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"volume": "21"}, "volume", "Hiermee gaat het aantal boven de toewijzing: toegestaan"),
        ({"end": "2026-08-05"}, "end", "De periode loopt over meer dan één maand."),
        ({"start": "gisteren"}, "start", "Vul een datum in, bijvoorbeeld 1-1-2026."),
        ({"product_code": "45A99"}, "product_code", "Dit product past niet bij de toewijzing."),
        ({"volume": "twee"}, "volume", "Het aantal moet een heel getal groter dan 0 zijn."),
    ],
)  # fmt: skip
async def test_a_refused_line_says_why_next_to_the_field_and_keeps_what_was_typed(
    client: httpx.AsyncClient, runtime: Runtime, changes: dict[str, str], field: str, message: str
) -> None:
    w = await with_allocation(runtime)
    csrf = await login(client, runtime, user_id=w.horizon_staff.id)
    data = {**FORM, **changes}
    r = await client.post("/settlement/deliveries", data=data, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 422
    assert f'<p class="kp-error" id="kp-{field}-error">{message}' in r.text.replace("\n", " ")
    assert f'aria-describedby="kp-{field}-hint kp-{field}-error"' in r.text or field == "volume"
    assert "Er is niets opgeslagen." in r.text
    for value in changes.values():
        assert f'value="{value}"' in r.text
    assert await deliveries(runtime) == 0


async def test_the_reason_is_in_english_for_an_english_reader(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await with_allocation(runtime)
    csrf = await login(client, runtime, user_id=w.horizon_staff.id)
    await client.post(
        "/language", data={"csrf_token": csrf, "lang": "en", "next": "/settlement/allocations"}
    )
    r = await client.post(
        "/settlement/deliveries", data={**FORM, "volume": "21"}, headers={"X-CSRF-Token": csrf}
    )
    assert r.status_code == 422
    assert "This would take the number above the allocation: allowed 20 hour per month" in r.text


async def test_the_delivery_form_needs_the_csrf_token(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await with_allocation(runtime)
    await login(client, runtime, user_id=w.horizon_staff.id)
    r = await client.post("/settlement/deliveries", data=FORM)
    assert r.status_code == 403
    assert await deliveries(runtime) == 0


async def test_finance_of_the_penvoerder_enters_for_a_chosen_provider(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await with_allocation(runtime)
    csrf = await login(client, runtime, user_id=w.region.finance.id)
    r = await client.get("/settlement/allocations")
    assert 'name="provider_id"' in r.text
    r = await client.post("/settlement/deliveries", data=FORM, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 422
    assert "Kies een aanbieder." in r.text
    r = await client.post(
        "/settlement/deliveries",
        data={**FORM, "provider_id": str(w.region.horizon.id)},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 303
    assert await deliveries(runtime) == 1


async def test_who_is_no_provider_may_not_see_allocations(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await with_allocation(runtime)
    outsider = await make_user(runtime, w.region.wijkteam, "Wim Wijk", "registrar")
    await login(client, runtime, user_id=outsider.id)
    assert (await client.get("/settlement/allocations")).status_code == 403
    client.cookies.clear()
    assert (await client.get("/settlement/allocations")).status_code in (302, 303, 401)
