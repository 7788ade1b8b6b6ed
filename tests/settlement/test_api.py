"""The JSON API /api/v1 as a provider's own system uses it, on SQLite and PostgreSQL: bearer
tokens and scopes, another organisation's allocation, all-or-nothing batches, retries that
declare nothing twice, amounts in whole cents, and a browser cookie that opens nothing."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from keerpunt.platform.models import AuditEntry, User
from keerpunt.platform.runtime import Runtime
from keerpunt.settlement.api_tokens import Scope, create_token, revoke_token
from keerpunt.settlement.models import ApiToken, Delivery
from tests.helpers import login, make_user
from tests.settlement.factories import add_tariff, principal
from tests.settlement.test_delivery_routes import with_allocation
from tests.settlement.test_records import World

pytestmark = pytest.mark.anyio

D = dt.date
TODAY = D(2026, 8, 15)
ALL = [s.value for s in Scope]


def line(reference: str = "r-1", **changes: object) -> dict[str, object]:
    values: dict[str, object] = {
        "reference": reference,
        "allocation_number": "T-100",
        "product_code": "45A52",
        "start": "2026-07-01",
        "end": "2026-07-31",
        "volume": 10,
    }
    values.update(changes)
    return values


async def token_for(
    rt: Runtime, user: User, scopes: list[str] = ALL, last_day: dt.date | None = None
) -> str:
    async with rt.unit_of_work(principal(user)) as uow:
        new = await create_token(uow, scopes, last_day, replace=True, today=TODAY)
    return new.secret


def bearer(token: str, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **more}


async def post(
    client: httpx.AsyncClient, token: str, lines: list[dict[str, object]], **headers: str
) -> httpx.Response:
    return await client.post(
        "/api/v1/deliveries", json={"deliveries": lines}, headers=bearer(token, **headers)
    )


async def count_deliveries(rt: Runtime) -> int:
    async with rt.sessionmaker() as db:
        return await db.scalar(select(func.count()).select_from(Delivery)) or 0


def problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["type"].startswith("urn:keerpunt:problem:")
    return body


async def horizon(rt: Runtime) -> tuple[World, str]:
    w = await with_allocation(rt)
    return w, await token_for(rt, w.region.other_finance)  # finance staff of Horizon


# ---- posting and reading back ----


async def test_a_provider_system_posts_care_and_reads_it_back_priced(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w, token = await horizon(runtime)
    r = await post(client, token, [line()])
    assert r.status_code == 201, r.text
    (saved,) = r.json()["deliveries"]
    assert saved["created"] is True and saved["reference"] == "r-1"

    r = await client.get("/api/v1/deliveries?period=2026-07", headers=bearer(token))
    assert r.status_code == 200
    (got,) = r.json()["deliveries"]
    assert got["status"] == "accepted" and got["reference"] == "r-1"
    assert (got["unit"], got["tariff_cents"], got["amount_cents"]) == ("04", 12_480, 124_800)
    # The quarter works as a period too; another month has nothing.
    r = await client.get("/api/v1/deliveries?period=2026Q3", headers=bearer(token))
    assert [d["id"] for d in r.json()["deliveries"]] == [saved["id"]]
    r = await client.get("/api/v1/deliveries?period=2026-08", headers=bearer(token))
    assert r.json()["deliveries"] == []

    # Audited with the token's organisation as actor.
    async with runtime.sessionmaker() as db:
        entry = await db.scalar(
            select(AuditEntry).where(AuditEntry.action == "settlement.delivery.add")
        )
        token_id = await db.scalar(select(ApiToken.id))
    assert entry is not None
    assert (entry.actor, entry.role, entry.organisation_id) == (
        f"api-token:{token_id}",
        "api",
        w.region.horizon.id,
    )


async def test_amounts_are_whole_cents_per_line_and_never_floats(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await with_allocation(runtime)
    # An odd tariff: € 123,45 an hour × 7 = € 864,15 and × 3 = € 370,35; each line's amount
    # is an integer number of cents (volume × tariff, rounded once per line), never a float.
    await add_tariff(runtime, w.region.horizon, 12_345, D(2026, 1, 1), product_code="45A53")
    async with runtime.unit_of_work(principal(w.region.finance)) as uow:
        from keerpunt.settlement.service import add_allocation
        from tests.settlement.test_records import allocation

        await add_allocation(uow, allocation(w, number="T-200", product_code="45A53"))
    token = await token_for(runtime, w.region.other_finance)
    r = await post(
        client,
        token,
        [
            line("a", allocation_number="T-200", product_code="45A53", volume=7),
            line("b", allocation_number="T-200", product_code="45A53", volume=3,
                 start="2026-08-01", end="2026-08-31"),
        ],
    )  # fmt: skip
    assert r.status_code == 201, r.text
    r = await client.get("/api/v1/deliveries?period=2026Q3", headers=bearer(token))
    amounts = [d["amount_cents"] for d in r.json()["deliveries"]]
    assert amounts == [86_415, 37_035]
    assert all(type(a) is int for a in amounts)
    assert '"amount_cents":86415' in r.text.replace(" ", "")


# ---- all or nothing ----


async def test_a_batch_with_one_bad_line_saves_nothing_and_says_why_per_line(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    _, token = await horizon(runtime)
    lines = [
        line("ok-1", volume=5),
        line("bad-period", start="2026-07-20", end="2026-08-05"),
        line("ok-2", volume=5, start="2026-07-01", end="2026-07-15"),
        line("too-much", volume=11, start="2026-07-16", end="2026-07-31"),
    ]
    body = problem(await post(client, token, lines), 422)
    assert body["type"] == "urn:keerpunt:problem:rejected-lines"
    assert "Er is niets opgeslagen" in body["title"]
    errors = {e["reference"]: e for e in body["errors"]}
    assert set(errors) == {"bad-period", "too-much"}
    assert errors["bad-period"]["code"] == "not_one_month"
    assert errors["bad-period"]["index"] == 1 and errors["bad-period"]["field"] == "end"
    # The same words as the form in the browser, with the earlier lines of the batch counted.
    assert errors["bad-period"]["detail"].startswith("De periode loopt over meer dan één maand.")
    assert errors["too-much"]["code"] == "over_volume"
    assert errors["too-much"]["detail"].startswith(
        "Hiermee gaat het aantal boven de toewijzing: toegestaan 20 uur per maand, "
        "al goedgekeurd 10, deze regel 11"
    )
    assert await count_deliveries(runtime) == 0

    # In English when asked, with the same codes.
    body = problem(await post(client, token, lines, **{"Accept-Language": "en"}), 422)
    too_much = next(e for e in body["errors"] if e["reference"] == "too-much")
    assert too_much["code"] == "over_volume"
    assert too_much["detail"].startswith("This would take the number above the allocation")
    assert body["title"].startswith("Not every line was accepted")


async def test_a_body_of_the_wrong_shape_is_refused_by_the_schema(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    _, token = await horizon(runtime)
    body = problem(await post(client, token, [line(volume="10"), {**line("x"), "bsn": "123"}]), 422)
    assert body["type"] == "urn:keerpunt:problem:invalid-request"
    found = {(e["field"], e["code"]) for e in body["errors"]}
    assert found == {
        ("deliveries[0].volume", "invalid_format"),
        ("deliveries[1].bsn", "unknown_field"),
    }
    r = await client.post(
        "/api/v1/deliveries", content=b"{not json", headers=bearer(token, **{
            "Content-Type": "application/json"})
    )  # fmt: skip
    problem(r, 400)
    r = await client.post("/api/v1/deliveries", data={"a": "b"}, headers=bearer(token))
    problem(r, 415)
    assert await count_deliveries(runtime) == 0


# ---- retries ----


async def test_a_retried_post_declares_nothing_twice(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    _, token = await horizon(runtime)
    lines = [line("r-1", volume=4), line("r-2", volume=4, start="2026-07-02", end="2026-07-02")]
    first = await post(client, token, lines)
    assert first.status_code == 201
    again = await post(client, token, lines)
    assert again.status_code == 200  # nothing new
    assert [d["id"] for d in again.json()["deliveries"]] == [
        d["id"] for d in first.json()["deliveries"]
    ]
    assert [d["created"] for d in again.json()["deliveries"]] == [False, False]
    # A retry with one new line adds only that one.
    more = await post(client, token, [*lines, line("r-3", volume=2)])
    assert more.status_code == 201
    assert [d["created"] for d in more.json()["deliveries"]] == [False, False, True]
    assert await count_deliveries(runtime) == 3
    async with runtime.sessionmaker() as db:
        audited = await db.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "settlement.delivery.add")
        )
    assert audited == 3

    # The same reference for other content is a mistake, not a retry.
    body = problem(await post(client, token, [line("r-1", volume=5)]), 422)
    assert [(e["reference"], e["code"]) for e in body["errors"]] == [("r-1", "reference_reused")]
    body = problem(await post(client, token, [line("r-9"), line("r-9")]), 422)
    assert [e["code"] for e in body["errors"]] == ["reference_twice"]
    assert await count_deliveries(runtime) == 3


# ---- tokens, scopes, other organisations ----


async def test_each_operation_needs_its_scope(client: httpx.AsyncClient, runtime: Runtime) -> None:
    w = await with_allocation(runtime)
    token = await token_for(runtime, w.region.other_finance, [Scope.ALLOCATIONS_READ.value])
    r = await client.get("/api/v1/allocations", headers=bearer(token))
    assert r.status_code == 200
    body = problem(await post(client, token, [line()]), 403)
    assert body["type"] == "urn:keerpunt:problem:insufficient-scope"
    assert "deliveries:write" in body["title"]
    assert (
        'error="insufficient_scope"'
        in ((await post(client, token, [line()])).headers["www-authenticate"])
    )
    problem(await client.get("/api/v1/deliveries?period=2026-07", headers=bearer(token)), 403)
    assert await count_deliveries(runtime) == 0


async def test_allocations_show_only_its_own_and_nothing_personal(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    _, token = await horizon(runtime)
    r = await client.get("/api/v1/allocations", headers=bearer(token))
    (a,) = r.json()["allocations"]
    assert a == {
        "number": "T-100",
        "variant": "specific",
        "product_category": "45",
        "product_code": "45A52",
        "volume": 20,
        "unit": "04",
        "frequency": "4",
        "budget_cents": None,
        "start": "2026-01-01",
        "end": "2026-09-30",
    }
    r = await client.get("/api/v1/allocations/T-100", headers=bearer(token))
    assert r.json() == a


async def test_another_organisations_allocation_does_not_exist_for_it(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await with_allocation(runtime)
    altra_finance = await make_user(runtime, w.region.altra, "Anna Altra", "finance")
    token = await token_for(runtime, altra_finance)
    r = await client.get("/api/v1/allocations", headers=bearer(token))
    assert r.json() == {"allocations": []}
    missing = problem(await client.get("/api/v1/allocations/T-999", headers=bearer(token)), 404)
    other = problem(await client.get("/api/v1/allocations/T-100", headers=bearer(token)), 404)
    assert missing == other
    # Posting under it reads exactly as posting under a number that does not exist.
    body_other = problem(await post(client, token, [line()]), 422)
    body_missing = problem(await post(client, token, [line(allocation_number="T-999")]), 422)
    assert body_other == body_missing
    assert body_other["errors"][0]["code"] == "no_allocation"
    assert body_other["errors"][0]["detail"] == "Er is geen toewijzing met dit nummer."
    assert await count_deliveries(runtime) == 0


@pytest.mark.parametrize("how", ["revoked", "expired", "unknown", "missing", "not-bearer"])
async def test_a_token_that_does_not_work_gets_401(
    client: httpx.AsyncClient, runtime: Runtime, how: str
) -> None:
    w, token = await horizon(runtime)
    headers = bearer(token)
    if how == "revoked":
        async with runtime.sessionmaker() as db:
            token_id = await db.scalar(select(ApiToken.id))
        async with runtime.unit_of_work(principal(w.region.other_finance)) as uow:
            assert token_id is not None
            await revoke_token(uow, token_id)
    elif how == "expired":
        token = await token_for(runtime, w.region.other_finance, last_day=TODAY)
        headers = bearer(token)  # valid through 15 August 2026: long over now
        async with runtime.sessionmaker() as db, db.begin():
            row = await db.scalar(select(ApiToken).where(ApiToken.revoked_at.is_(None)))
            assert row is not None and row.expires_at is not None
            row.expires_at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    elif how == "unknown":
        headers = bearer("kp_" + "x" * 43)
    elif how == "missing":
        headers = {}
    else:
        headers = {"Authorization": f"Basic {token}"}
    for r in (
        await client.get("/api/v1/allocations", headers=headers),
        await client.post("/api/v1/deliveries", json={"deliveries": [line()]}, headers=headers),
    ):
        body = problem(r, 401)
        assert r.headers["www-authenticate"].startswith('Bearer realm="keerpunt"')
        assert "API-sleutel" in body["title"]
    assert await count_deliveries(runtime) == 0


async def test_a_logged_in_browser_cannot_use_the_api_with_its_cookie(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """CSRF protects requests a cookie authenticates. The API never reads the cookie, so a
    forged cross-site post (cookie, no bearer, with or without a CSRF token) opens nothing."""
    w = await with_allocation(runtime)
    csrf = await login(client, runtime, user_id=w.region.other_finance.id)
    attempts = [
        await client.post("/api/v1/deliveries", json={"deliveries": [line()]}),
        await client.post(
            "/api/v1/deliveries",
            json={"deliveries": [line()]},
            headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"},
        ),
        await client.post(
            "/api/v1/deliveries",
            content=b'{"deliveries": []}',
            headers={"Content-Type": "text/plain"},  # a "simple" cross-site request
        ),
        await client.get("/api/v1/allocations"),
    ]
    for r in attempts:
        problem(r, 401)
    assert await count_deliveries(runtime) == 0
    # The same cookie still works on the page, where CSRF guards it.
    assert (await client.get("/settlement/api-token")).status_code == 200


async def test_openapi_document_is_served(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) == {
        "/api/v1/allocations",
        "/api/v1/allocations/{number}",
        "/api/v1/deliveries",
    }
    r = await client.get("/api/v1/nothing-here")
    problem(r, 404)
    r = await client.delete("/api/v1/deliveries")
    assert problem(r, 405) and r.headers["allow"] == "GET, POST"


# ---- the token page ----


async def test_finance_makes_a_token_sees_it_once_and_replaces_it(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await with_allocation(runtime)
    csrf = await login(client, runtime, user_id=w.region.other_finance.id)
    r = await client.get("/settlement/api-token")
    assert r.status_code == 200 and "Uw organisatie heeft nu geen sleutel." in r.text

    form = {"csrf_token": csrf, "scopes": ALL, "last_day": ""}
    r = await client.post("/settlement/api-token", data=form)
    assert r.status_code == 201
    secret = r.text.split('id="kp-new-secret" type="text" readonly value="')[1].split('"')[0]
    assert secret.startswith("kp_") and len(secret) == 46
    async with runtime.sessionmaker() as db:
        row = await db.scalar(select(ApiToken))
    assert row is not None and row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(row.__dict__)  # only the hash is kept
    r = await client.get("/settlement/api-token")
    assert secret not in r.text and row.prefix in r.text and "nog niet gebruikt" in r.text

    # It works, and the page then shows when it was last used.
    assert (await client.get("/api/v1/allocations", headers=bearer(secret))).status_code == 200
    assert "nog niet gebruikt" not in (await client.get("/settlement/api-token")).text

    # One token per organisation: a second one only after confirming it replaces the first.
    r = await client.post("/settlement/api-token", data=form)
    assert r.status_code == 422 and "Vink aan dat de nieuwe sleutel de oude vervangt" in r.text
    r = await client.post("/settlement/api-token", data={**form, "replace": "yes"})
    assert r.status_code == 201
    second = r.text.split('readonly value="')[1].split('"')[0]
    assert (await client.get("/api/v1/allocations", headers=bearer(secret))).status_code == 401
    assert (await client.get("/api/v1/allocations", headers=bearer(second))).status_code == 200

    # Revoking it stops it at once; all of it is audited.
    async with runtime.sessionmaker() as db:
        current = await db.scalar(select(ApiToken.id).where(ApiToken.revoked_at.is_(None)))
    r = await client.post(f"/settlement/api-token/{current}/revoke", data={"csrf_token": csrf})
    assert r.status_code == 303
    assert (await client.get("/api/v1/allocations", headers=bearer(second))).status_code == 401
    async with runtime.sessionmaker() as db:
        actions = list(
            await db.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.action.like("settlement.api_token.%"))
                .order_by(AuditEntry.seq)
            )
        )
    assert actions == [
        "settlement.api_token.create",
        "settlement.api_token.revoke",
        "settlement.api_token.create",
        "settlement.api_token.revoke",
    ]


async def test_the_token_page_is_for_the_organisations_finance_staff_only(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await with_allocation(runtime)
    csrf = await login(client, runtime, user_id=w.horizon_staff.id)  # Horizon, not finance
    assert (await client.get("/settlement/api-token")).status_code == 403
    r = await client.post("/settlement/api-token", data={"csrf_token": csrf, "scopes": ALL})
    assert r.status_code == 403

    # Another organisation's token reads as one that does not exist.
    await token_for(runtime, w.region.other_finance)
    async with runtime.sessionmaker() as db:
        horizon_token = await db.scalar(select(ApiToken.id))
    altra_finance = await make_user(runtime, w.region.altra, "Anna Altra", "finance")
    csrf = await login(client, runtime, user_id=altra_finance.id)
    r = await client.post(
        f"/settlement/api-token/{horizon_token}/revoke", data={"csrf_token": csrf}
    )
    assert r.status_code == 404
    # Without the CSRF token nothing happens.
    r = await client.post("/settlement/api-token", data={"scopes": ALL})
    assert r.status_code == 403
    async with runtime.sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(ApiToken)) == 1
