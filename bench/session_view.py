"""How much does reading a triage session *for one viewer* cost, next to reading its rows?

Two reads are measured: the whole table (a page load) and one changed item (what every
participant's connection renders on a live push).

Every push in a live session renders the table for each participant: consent decision,
decryption, labels, audit row. This script measures that against a baseline measured in the
same run: one plain SELECT of the same factor and goal rows, no consent, no decryption.

    .venv/bin/python bench/session_view.py [--items 60] [--reads 200] [--database URL]

It prints wall time per read for both and the ratio. Nothing is asserted: it is for people.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import tempfile
import time

import _setup
from sqlalchemy import select

from keerpunt.platform.db import make_engine
from keerpunt.platform.models import Organisation, User
from keerpunt.platform.principal import staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.schema import metadata
from keerpunt.triage import service as triage
from keerpunt.triage.models import Factor, Goal

YES = {key: True for key, _q, _w in triage.ENTRY_QUESTIONS}


async def setup(url: str, items: int) -> tuple[Runtime, User, int]:
    engine = make_engine(url, pool=False)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)
        await conn.run_sync(metadata.create_all)
    await engine.dispose()
    rt = Runtime.build(_setup.settings(url))
    async with rt.sessionmaker() as db, db.begin():
        team = Organisation(name="Team", kind="other")
        prov = Organisation(name="Aanbieder", kind="provider")
        db.add_all([team, prov])
        await db.flush()
        reg = User(organisation_id=team.id, display_name="R", email="r@x", roles="registrar")
        coord = User(organisation_id=team.id, display_name="C", email="c@x", roles="coordinator")
        db.add_all([reg, coord])
    async with rt.unit_of_work(staff_principal(reg)) as uow:
        case = await triage.register_case(
            uow,
            triage.Registration(
                answers=YES,
                youth_name="Bench Jeugdige",
                birth_date=dt.date(2012, 5, 1),
                bsn="",
                situation="",
                parent_names=("Ouder",),
                jim_name="",
                municipality_id=None,
            ),
        )
    async with rt.unit_of_work(staff_principal(coord)) as uow:
        session = await triage.plan_session(uow, case.id, dt.datetime.now(dt.UTC), [])
        for i in range(items):
            await triage.add_factor(uow, session.id, "school", "perpetuating", f"Factor {i}")
            await triage.add_goal(uow, session.id, f"Doel {i}")
    return rt, coord, session.id


async def run(url: str, items: int, reads: int) -> None:
    rt, coord, sid = await setup(url, items)
    who = staff_principal(coord)

    async def baseline() -> None:
        async with rt.sessionmaker() as db:
            await db.scalars(select(Factor).where(Factor.session_id == sid))
            await db.scalars(select(Goal).where(Goal.session_id == sid))

    async def viewer() -> None:
        async with rt.unit_of_work(who) as uow:
            await triage.session_view(uow, sid)

    async with rt.sessionmaker() as db:
        one_factor = await db.scalar(select(Factor.id).where(Factor.session_id == sid))
    assert one_factor is not None

    async def push() -> None:
        async with rt.unit_of_work(who) as uow:
            await triage.table_changes(uow, sid, [("factor", one_factor)])

    timings = {}
    for name, fn in (
        ("baseline (plain SELECT)", baseline),
        ("page: whole table, 1 viewer", viewer),
        ("push: 1 changed item", push),
    ):
        await fn()  # warm up
        start = time.perf_counter()
        for _ in range(reads):
            await fn()
        timings[name] = (time.perf_counter() - start) / reads
    await rt.engine.dispose()
    base = timings["baseline (plain SELECT)"]
    print(f"database: {url.split(':')[0]}  items: {2 * items}  reads: {reads}")
    for name, t in timings.items():
        print(f"  {name:<30} {t * 1000:8.2f} ms per read   {t / base:5.1f}x baseline")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=60)
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--database", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite+aiosqlite:///{tmp}/bench.db"
        asyncio.run(run(url, args.items, args.reads))


if __name__ == "__main__":
    main()
