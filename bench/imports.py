"""Importing allocations from a file, next to the way it was done before: one by one.

Makes a scratch database (a temporary SQLite file, or ``--database URL``: its tables are
dropped and created, use a scratch one) with a penvoerder, a provider, a municipality and
``--rows`` cases, then in one transaction each:

- baseline: ``--rows`` allocations written one at a time with
  :func:`keerpunt.settlement.records.add_allocation` (what the import did per row before:
  check, INSERT and audit row, one allocation at a time);
- import: a CSV file of ``--rows`` other allocations through
  :func:`keerpunt.settlement.imports.import_file` (all rows checked, then one batched INSERT
  and one batched audit).

It prints wall time and SQL statements of each and the ratio. Nothing is asserted.

    .venv/bin/python bench/imports.py [--rows 500] [--database URL]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import tempfile
import time
from typing import Any

import _setup
from sqlalchemy import event, insert

from keerpunt.platform.db import make_engine
from keerpunt.platform.models import Case, Organisation, User
from keerpunt.platform.principal import staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.schema import metadata
from keerpunt.settlement.declaration import Allocation, Variant
from keerpunt.settlement.imports import ImportKind, import_file
from keerpunt.settlement.records import add_allocation

HEADER = "Toewijzingnummer;Casus;Aanbieder;Gemeente;Soort;Budget;Begindatum;Einddatum"


async def _world(url: str, rows: int) -> None:
    engine = make_engine(url, pool=False)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)
        await conn.run_sync(metadata.create_all)
    now = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
    async with engine.begin() as conn:
        await conn.execute(
            insert(Organisation),
            [
                {
                    "id": i,
                    "name": name,
                    "kind": kind,
                    "is_penvoerder": i == 1,
                    "agb_code": agb,
                    "cbs_code": cbs,
                }
                for i, name, kind, agb, cbs in (
                    (1, "Pactum", "provider", "98000005", None),
                    (2, "Horizon", "provider", "98000011", None),
                    (3, "Gemeente Zwolle", "municipality", None, "0193"),
                )
            ],
        )
        await conn.execute(
            insert(User),
            [{"id": 1, "organisation_id": 1, "display_name": "Fien Financien",
              "email": "fien@pactum.example", "roles": "finance", "active": True}],
        )  # fmt: skip
        await conn.execute(
            insert(Case),
            [{"id": c, "pseudonym": f"Casus-{c:06d}", "registered_by_id": 1, "age_band": "12-15",
              "registered_at": now, "status": "registered", "legal_basis": "consent"}
             for c in range(1, 2 * rows + 1)],
        )  # fmt: skip
    await engine.dispose()


async def _measure(url: str, rows: int) -> dict[str, Any]:
    rt = Runtime.build(_setup.settings(url), pool=False)
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(args[2])

    event.listen(rt.engine.sync_engine, "before_cursor_execute", count)
    try:
        async with rt.sessionmaker() as db:
            user = await db.get(User, 1)
            assert user is not None
            who = staff_principal(user)
        start = time.perf_counter()
        async with rt.unit_of_work(who) as uow:
            for n in range(1, rows + 1):
                await add_allocation(
                    uow,
                    Allocation(
                        number=f"B-{n}",
                        case_id=n,
                        provider_id=2,
                        municipality_id=3,
                        variant=Variant.GENERIC,
                        start=dt.date(2026, 1, 1),
                        end=dt.date(2026, 12, 31),
                        budget_cents=50_000,
                    ),
                )
        baseline = time.perf_counter() - start
        baseline_statements = len(seen)
        seen.clear()
        data = "\r\n".join(
            [HEADER]
            + [
                f"T-{n};Casus-{rows + n:06d};Horizon;0193;generiek;500,00;1-1-2026;31-12-2026"
                for n in range(1, rows + 1)
            ]
        ).encode()
        start = time.perf_counter()
        async with rt.unit_of_work(who) as uow:
            result = await import_file(uow, ImportKind.ALLOCATIONS, data, "toewijzingen.csv")
        batched = time.perf_counter() - start
        assert result.count == rows
        return {
            "baseline": baseline,
            "baseline_statements": baseline_statements,
            "import": batched,
            "import_statements": len(seen),
        }
    finally:
        event.remove(rt.engine.sync_engine, "before_cursor_execute", count)
        await rt.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--database", help="a scratch database URL (its tables are dropped)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite+aiosqlite:///{tmp}/imports.db"
        asyncio.run(_world(url, args.rows))
        r = asyncio.run(_measure(url, args.rows))
    name = url.split(":", 1)[0]
    print(f"{name}: {args.rows:,} allocations")
    print(
        f"  baseline (one by one, add_allocation): {r['baseline']:.2f} s, "
        f"{r['baseline_statements']:,} SQL statements"
    )
    print(
        f"  import (import_file, batched):         {r['import']:.2f} s, "
        f"{r['import_statements']:,} SQL statements"
    )
    print(f"  ratio import / baseline: {r['import'] / r['baseline']:.3f}")


if __name__ == "__main__":
    main()
