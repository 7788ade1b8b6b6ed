"""A batch of delivered care posted over the JSON API: ``POST /api/v1/deliveries``.

On a fresh database (a SQLite file, or a PostgreSQL database it creates and drops) it makes
one provider with an API token, 50 allocations and one more with room for every line, then
posts ``--lines`` lines (default 500) in one request through the whole application (bearer
token, OpenAPI shape check, the acceptance rules, the writes, the audit rows), twice (after
one batch of the same size under allocations of its own, to warm up):

- spread: the lines spread over the 50 allocations;
- one allocation: all lines under the one allocation (every line counts against the same
  volume, so each line sees all the lines before it).

Baseline, measured in the same run on the same database: inserting the same rows into the
delivery table with one plain executemany (no checks, no audit, no HTTP).

    .venv/bin/python bench/api.py [--lines 500] [--db sqlite|postgresql|both]

PostgreSQL is reached at ``KEERPUNT_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``), as the tests do. It prints wall time for
each batch, the baseline and the ratio. Nothing is asserted: it is for people.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import tempfile
import time
from typing import Any

import _setup
import httpx
from sqlalchemy import delete, insert, text

from keerpunt.platform.app import create_app
from keerpunt.platform.models import Case, Organisation, User
from keerpunt.platform.principal import staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.schema import metadata
from keerpunt.settlement.api_tokens import Scope, create_token
from keerpunt.settlement.models import Allocation, Contract, Delivery, DeliveryReference

SPREAD = 50  # allocations the spread batch uses
FIRST = dt.date(2026, 1, 1)
DAYS = 273  # 1 January to 30 September 2026: the allocations' period


async def _seed(rt: Runtime) -> str:
    """The penvoerder, one municipality, one provider with its finance user, a tariff, the
    allocations; returns the provider's API token."""
    async with rt.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    async with rt.sessionmaker() as db, db.begin():
        penvoerder = Organisation(name="Pactum", kind="provider", is_penvoerder=True)
        municipality = Organisation(name="Gemeente Zwolle", kind="municipality", cbs_code="0193")
        provider = Organisation(name="Horizon", kind="provider", agb_code="98000011")
        db.add_all([penvoerder, municipality, provider])
        await db.flush()
        clerk = User(organisation_id=penvoerder.id, display_name="Fien", email="f@p.example")
        finance = User(
            organisation_id=provider.id, display_name="Henk", email="h@h.example", roles="finance"
        )
        db.add_all([clerk, finance])
        await db.flush()
        case = Case(pseudonym="Casus-0001", age_band="12-15", registered_by_id=clerk.id)
        contract = Contract(provider_id=provider.id, product_category="45", product_code="45A52",
                            description="Ambulante jeugdhulp", unit="04", tariff_cents=12_480,
                            valid_from=FIRST)  # fmt: skip
        db.add_all([case, contract])
        await db.flush()
        for number in [f"{x}-{i:03d}" for x in "SW" for i in range(SPREAD)] + ["ONE-1"]:
            db.add(
                Allocation(number=number, case_id=case.id, provider_id=provider.id,
                           municipality_id=municipality.id, variant="specific",
                           product_category="45", product_code="45A52", volume=100_000,
                           unit="04", frequency="6", budget_cents=None, start_date=FIRST,
                           end_date=FIRST + dt.timedelta(days=DAYS - 1))
            )  # fmt: skip
    async with rt.unit_of_work(staff_principal(finance, session_id="bench")) as uow:
        new = await create_token(uow, [s.value for s in Scope], None, replace=True, today=FIRST)
    return new.secret


def _lines(n: int, numbers: list[str], tag: str) -> list[dict[str, Any]]:
    """``n`` one-day lines, each allocation's on its own days (1 to 5 hours)."""
    out = []
    for i in range(n):
        day = (FIRST + dt.timedelta(days=(i // len(numbers)) % DAYS)).isoformat()
        number = numbers[i % len(numbers)]
        out.append({"reference": f"{tag}-{i}", "allocation_number": number,
                    "product_code": "45A52", "start": day, "end": day,
                    "volume": 1 + i % 5})  # fmt: skip
    return out


async def _post(client: httpx.AsyncClient, token: str, lines: list[dict[str, Any]]) -> float:
    start = time.perf_counter()
    r = await client.post(
        "/api/v1/deliveries",
        json={"deliveries": lines},
        headers={"Authorization": f"Bearer {token}"},
    )
    took = time.perf_counter() - start
    if r.status_code != 201:
        raise SystemExit(f"the batch was refused ({r.status_code}): {r.text[:500]}")
    return took


async def _baseline(rt: Runtime, lines: list[dict[str, Any]]) -> float:
    """The same rows into the delivery table with one executemany, then removed again."""
    async with rt.sessionmaker() as db:
        ids = {
            number: i for number, i in await db.execute(text("SELECT number, id FROM allocation"))
        }
        provider = await db.scalar(text("SELECT id FROM organisation WHERE name = 'Horizon'"))
    rows = [
        {"provider_id": provider, "allocation_id": ids[x["allocation_number"]],
         "product_category": "45", "product_code": x["product_code"],
         "start_date": dt.date.fromisoformat(x["start"]),
         "end_date": dt.date.fromisoformat(x["end"]), "volume": x["volume"]}
        for x in lines
    ]  # fmt: skip
    table = Delivery.__table__
    async with rt.sessionmaker() as db:
        last = await db.scalar(text("SELECT coalesce(max(id), 0) FROM delivery"))
    start = time.perf_counter()
    async with rt.engine.begin() as conn:
        await conn.execute(insert(table), rows)
    took = time.perf_counter() - start
    async with rt.engine.begin() as conn:
        await conn.execute(delete(table).where(table.c.id > last))
    return took


async def _measure(url: str, n: int) -> dict[str, float]:
    settings = _setup.settings(url, base_url="http://testserver")
    rt = Runtime.build(settings, pool=False)
    try:
        token = await _seed(rt)
        app = create_app(settings, runtime=rt)
        transport = httpx.ASGITransport(app=app)
        out: dict[str, float] = {}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", timeout=600
        ) as client:
            # Warm up (first requests, compiled statements) on allocations of its own.
            await _post(client, token, _lines(n, [f"W-{i:03d}" for i in range(SPREAD)], "warm"))
            for name, numbers in (
                ("spread", [f"S-{i:03d}" for i in range(SPREAD)]),
                ("one", ["ONE-1"]),
            ):
                lines = _lines(n, numbers, name)
                out[f"{name}_baseline_s"] = await _baseline(rt, lines)
                out[f"{name}_s"] = await _post(client, token, lines)
        async with rt.sessionmaker() as db:
            out["saved"] = float(await db.scalar(text("SELECT count(*) FROM delivery")) or 0)
            refs = await db.scalar(text(f"SELECT count(*) FROM {DeliveryReference.__tablename__}"))
            out["references"] = float(refs or 0)
        return out
    finally:
        await rt.engine.dispose()


def bench(backend: str, n: int, tmp: str) -> dict[str, float]:
    with _setup.scratch_database(backend, tmp) as url:
        return asyncio.run(_measure(url, n))


def report(backend: str, n: int, r: dict[str, float]) -> None:
    print(f"{backend}: {n:,} lines in one POST /api/v1/deliveries "
          f"({r['saved']:,.0f} saved, {r['references']:,.0f} references)")  # fmt: skip
    for name, label in (("spread", f"spread over {SPREAD} allocations"),
                        ("one", "all under one allocation")):  # fmt: skip
        took, base = r[f"{name}_s"], r[f"{name}_baseline_s"]
        print(f"  {label:<30} {took:8.3f} s  {n / took:>8,.0f} lines/s  "
              f"baseline (one executemany) {base:7.3f} s  {took / base:6.1f}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=500)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    backends = ("sqlite", "postgresql") if args.db == "both" else (args.db,)
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            report(backend, args.lines, bench(backend, args.lines, tmp))


if __name__ == "__main__":
    main()
