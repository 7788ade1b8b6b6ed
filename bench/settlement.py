"""The quarterly settlement at national scale, next to one SQL aggregate over the same rows.

Generates a quarter (2026Q3) in its own temporary database: ``--lines`` delivery lines
(default 1,000,000) under ``--lines / 50`` allocations (default 20,000) of 50 providers, with
contracts whose tariffs are indexed on 1 August, both settlement models (5 kassiers with 3
registered sub-providers each, 30 providers that declare themselves), every allocation variant
and about one line in ten that the rules reject (no agreement, other product, outside the
allocation, over volume or budget).

Then it closes the quarter with the real code (:func:`keerpunt.settlement.runs.close_quarter`,
what ``keerpunt settle`` runs) in a fresh child process, and measures in the same child the
baseline: one hand-written SQL aggregate over the same rows (volume x tariff per holder per
month, joined to the tariff valid on the line's first day). After the run it measures the
floor too: the same join with each line priced, written into the run-line table by the
database in one ``INSERT ... SELECT`` (no rules, nothing in Python), what any run that keeps
its lines must do at least.

    .venv/bin/python bench/settlement.py [--lines N] [--db sqlite|postgresql|both]

PostgreSQL: a database is created and dropped at the admin URL ``KEERPUNT_TEST_POSTGRES_URL``
(default ``postgresql://postgres@127.0.0.1:5432/postgres``), as the tests do.

It prints wall time, peak memory and lines per second for both, and the ratio; also the CPU
time the child itself used (SQLite works inside it, PostgreSQL in its server), which tells a
busy machine's waiting from real work. Target (issue
#5): within 3x of the baseline, under 60 s, peak memory under 500 MB. Peak memory is the
child's high-water resident memory (VmHWM, read when the run has committed): the most memory
the operating system had to give the process, Python, libraries and the drivers' buffers
included (the peak right after the imports is printed too). Not getrusage's ru_maxrss: on
Linux it carries the parent's peak (the data generator's) over fork and exec. Not tracemalloc:
it sees only Python's own allocations (not SQLite's cache or asyncpg's buffers) and slows the
run down several times. The child is a fresh process so nothing of the generator counts.
Nothing is asserted: it is for people.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import _setup
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncConnection

from keerpunt.platform.db import make_engine
from keerpunt.platform.models import Case, Organisation, User
from keerpunt.platform.principal import staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.schema import metadata
from keerpunt.settlement.models import Allocation, Contract, SubProviderAgreement
from keerpunt.settlement.rules import parse_quarter
from keerpunt.settlement.runs import close_quarter

QUARTER = parse_quarter("2026Q3")
TODAY = dt.date(2026, 10, 5)
INDEXED_ON = dt.date(2026, 8, 1)  # tariffs rise 3 % from this day (indexering)
FINANCE_EMAIL = "financien@pactum.example"
PROVIDERS = 50
KASSIERS = 5  # providers 0..4, each with 3 sub-providers (5..19); 20..49 declare themselves
SUBS_PER_KASSIER = 3
MUNICIPALITIES = 12
LINES_PER_ALLOCATION = 50

# (category, code, unit, tariff in cents before indexation, allocation variant, volume, frequency)
PRODUCTS = (
    ("45", "45A52", "04", 11_130, "specific", 10, "2"),  # ambulant, hours a week
    ("45", "45A53", "04", 9_870, "aspecific", None, None),  # category only, with a budget
    ("44", "44A01", "01", 165, "specific", 600, "2"),  # minutes a week
    ("43", "43A03", "14", 24_950, "specific", 1, "1"),  # etmaal: one a day (tight)
    ("54", "54001", "16", 6_125, "specific", 10, "2"),  # dagdeel
    ("40", "40A11", "84", 19_800, "specific", 40, "4"),  # stuk (inzet), per month
    ("41", "41A22", "82", 52_000, "output", 200, "6"),  # output, pieces in total
    ("42", "42A33", "83", 100, "generic", None, None),  # generic, with a budget
)


# ---- the generated quarter ----


def _holders() -> list[int]:
    """Provider numbers (0-based) that hold allocations: the kassiers and the declarers."""
    return [*range(KASSIERS), *range(KASSIERS + KASSIERS * SUBS_PER_KASSIER, PROVIDERS)]


def _subs(kassier: int) -> list[int]:
    first = KASSIERS + kassier * SUBS_PER_KASSIER
    return list(range(first, first + SUBS_PER_KASSIER))


def deliveries(lines: int, allocations: int, org: list[int]) -> Iterator[tuple[Any, ...]]:
    """Delivery rows (id, provider, allocation, category, code, start, end, volume): about
    50 lines per allocation over the quarter's three months, a day or a week each."""
    holders = _holders()
    for i in range(lines):
        a = i % allocations
        k = i // allocations
        holder = holders[a % len(holders)]
        category, code, unit, *_ = PRODUCTS[a % len(PRODUCTS)]
        month = 7 + k % 3
        day = 1 + (k // 3) % 17
        start = dt.date(2026, month, day)
        end = start + dt.timedelta(days=6) if k % 5 == 0 else start
        volume = (1 + i % 3) * (30 if unit == "01" else 1)
        provider = holder
        if holder < KASSIERS:  # kassier model: the kassier or one of its sub-providers
            provider = [holder, *_subs(holder)][k % (SUBS_PER_KASSIER + 1)]
        if i % 193 == 0:  # a provider that is neither holder nor registered
            provider = (
                (holder + 7) % PROVIDERS
                if holder >= KASSIERS
                else _subs((holder + 1) % KASSIERS)[0]
            )
        if i % 97 == 0 and PRODUCTS[a % len(PRODUCTS)][4] in ("specific", "output"):
            category, code = "45", ("45A53" if code == "45A52" else "45A52")  # other product
        if PRODUCTS[a % len(PRODUCTS)][4] == "aspecific" and k % 2:
            code = "45A52"  # aspecific: any product of the category
        yield (i + 1, org[provider], a + 1, category, code, start, end, volume)


async def _generate(url: str, lines: int) -> None:
    """Schema and a whole quarter: small tables with Core inserts, the delivery lines with the
    driver's fastest bulk path (COPY on PostgreSQL, executemany on SQLite)."""
    allocations = max(1, lines // LINES_PER_ALLOCATION)
    engine = make_engine(url, pool=False)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)
        await conn.run_sync(metadata.create_all)
    now = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
    async with engine.begin() as conn:
        orgs: list[dict[str, Any]] = [
            {"id": 1, "name": "Pactum", "kind": "provider", "is_penvoerder": True,
             "agb_code": "98000005", "cbs_code": None},
            *({"id": 2 + m, "name": f"Gemeente {m + 1}", "kind": "municipality",
               "cbs_code": f"{m + 100:04d}", "agb_code": None, "is_penvoerder": False}
              for m in range(MUNICIPALITIES)),
            *({"id": 100 + p, "name": f"Aanbieder {p + 1:02d}", "kind": "provider",
               "agb_code": f"{98100000 + p}", "cbs_code": None, "is_penvoerder": False}
              for p in range(PROVIDERS)),
        ]  # fmt: skip
        await conn.execute(insert(Organisation), orgs)
        await conn.execute(
            insert(User),
            [{"id": 1, "organisation_id": 1, "display_name": "Fien Financien",
              "email": FINANCE_EMAIL, "roles": "finance", "active": True}],
        )  # fmt: skip
        org = [100 + p for p in range(PROVIDERS)]
        contracts = []
        for p in range(PROVIDERS):
            for category, code, unit, tariff, *_ in PRODUCTS:
                indexed = tariff + (tariff * 3 + 50) // 100
                for valid_from, valid_to, cents in (
                    (dt.date(2026, 1, 1), INDEXED_ON - dt.timedelta(days=1), tariff),
                    (INDEXED_ON, None, indexed),
                ):
                    contracts.append(
                        {"provider_id": org[p], "product_category": category,
                         "product_code": code, "description": f"Product {code}", "unit": unit,
                         "tariff_cents": cents, "valid_from": valid_from, "valid_to": valid_to,
                         "created_at": now}
                    )  # fmt: skip
        await conn.execute(insert(Contract), contracts)
        agreements = [
            {"kassier_id": org[k], "provider_id": org[s],
             "margin_kind": "percent" if s % 2 else "fixed", "margin_value": 660 if s % 2 else 150,
             "valid_from": dt.date(2026, 1, 1),
             "valid_to": dt.date(2026, 8, 31) if s == _subs(0)[-1] else None, "created_at": now}
            for k in range(KASSIERS)
            for s in _subs(k)
        ]  # fmt: skip
        await conn.execute(insert(SubProviderAgreement), agreements)
        await conn.execute(
            insert(Case),
            [{"id": a + 1, "pseudonym": f"Casus-{a + 1:06d}", "registered_by_id": 1,
              "age_band": "12-15", "registered_at": now, "status": "registered",
              "legal_basis": "consent"} for a in range(allocations)],
        )  # fmt: skip
        holders = _holders()
        rows = []
        for a in range(allocations):
            category, code, unit, tariff, variant, volume, frequency = PRODUCTS[a % len(PRODUCTS)]
            budget = None
            if variant in ("aspecific", "generic"):  # a few run out of budget
                budget = (3_000_000 if a % 11 else 300_000) if variant == "aspecific" else 8_000
            rows.append(
                {"id": a + 1, "number": f"T{a + 1:07d}", "case_id": a + 1,
                 "provider_id": org[holders[a % len(holders)]],
                 "municipality_id": 2 + a % MUNICIPALITIES, "variant": variant,
                 "product_category": category if variant != "generic" else None,
                 "product_code": code if variant in ("specific", "output") else None,
                 "volume": volume, "unit": unit if variant in ("specific", "output") else None,
                 "frequency": frequency, "budget_cents": budget,
                 "start_date": dt.date(2026, 1, 1),
                 "end_date": dt.date(2026, 8, 15) if a % 31 == 0 else dt.date(2026, 12, 31),
                 "created_at": now}
            )  # fmt: skip
        await conn.execute(insert(Allocation), rows)
        await _bulk_deliveries(conn, deliveries(lines, allocations, org), now)
        if engine.dialect.name == "postgresql":
            for table in ("organisation", "user_account", "case_file", "allocation", "delivery"):
                await conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
    async with engine.begin() as conn:  # statistics, as a database in use would have them
        await conn.execute(text("ANALYZE"))
    await engine.dispose()


async def _bulk_deliveries(
    conn: AsyncConnection, rows: Iterator[tuple[Any, ...]], now: dt.datetime
) -> None:
    columns = ("id", "provider_id", "allocation_id", "product_category", "product_code",
               "start_date", "end_date", "volume", "created_at", "updated_at")  # fmt: skip
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None
    if conn.dialect.name == "postgresql":
        await raw.copy_records_to_table(
            "delivery", records=((*r, now, now) for r in rows), columns=list(columns)
        )
        return
    # SQLite stores dates and times as ISO text, as SQLAlchemy's own types write them.
    stamp = now.replace(tzinfo=None).isoformat(sep=" ")
    sql = f"INSERT INTO delivery ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    chunk: list[tuple[Any, ...]] = []
    for r in rows:
        chunk.append((*r[:5], r[5].isoformat(), r[6].isoformat(), r[7], stamp, stamp))
        if len(chunk) == 50_000:
            await raw.executemany(sql, chunk)
            chunk = []
    if chunk:
        await raw.executemany(sql, chunk)


# ---- measured in the child ----

BASELINE = {
    "sqlite": "strftime('%m', d.start_date)",
    "postgresql": "extract(month from d.start_date)",
}


# Every line of the quarter with the tariff valid on its first day: what both read.
PRICED_LINES = """
        FROM delivery d
        JOIN allocation a ON a.id = d.allocation_id
        JOIN contract c ON c.provider_id = a.provider_id AND c.product_code = d.product_code
             AND c.valid_from <= d.start_date
             AND (c.valid_to IS NULL OR c.valid_to >= d.start_date)
        WHERE d.start_date <= :last_day
"""


def _baseline_sql(dialect: str) -> str:
    month = BASELINE[dialect]
    return f"""
        SELECT a.provider_id, {month} AS month, count(*), sum(d.volume * c.tariff_cents)
        {PRICED_LINES}
        GROUP BY a.provider_id, {month}
        ORDER BY a.provider_id, month
    """


# The floor: what any run that keeps its lines must do at least. The same join, each line
# priced, written into the run-line table by the database itself in one statement: no rules
# (no volume, budget, period or sub-provider checks, no credits), no Python per line. Written
# under run id -1 after the real run, committed, then deleted again.
FLOOR_SQL = f"""
    INSERT INTO settlement_run_line (run_id, seq, delivery_id, revision, direction,
        allocation_number, holder_id, provider_id, municipality_id, product_category,
        product_code, start_date, end_date, volume, unit, tariff_cents, amount_cents)
    SELECT -1, d.id, d.id, 1, 'D', a.number, a.provider_id, d.provider_id, a.municipality_id,
        d.product_category, d.product_code, d.start_date, d.end_date, d.volume, c.unit,
        c.tariff_cents, d.volume * c.tariff_cents
    {PRICED_LINES}
"""


def _peak_mb() -> float:
    """This process's peak resident memory. Linux: VmHWM, the high-water mark of this process
    image; getrusage's ru_maxrss would also count the parent's peak (Linux keeps it across
    fork and exec). Elsewhere ru_maxrss."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


async def _measure(url: str) -> dict[str, Any]:
    """In the child: the baseline aggregate, then the real quarterly run (committed)."""
    rss_start = _peak_mb()
    rt = Runtime.build(_setup.settings(url), pool=False)
    try:
        async with rt.sessionmaker() as db:
            start, cpu = time.perf_counter(), time.process_time()
            groups = (
                await db.execute(text(_baseline_sql(rt.engine.dialect.name)),
                                 {"last_day": QUARTER.end})
            ).all()  # fmt: skip
            baseline, baseline_cpu = time.perf_counter() - start, time.process_time() - cpu
            user = (
                await db.execute(text("SELECT id FROM user_account WHERE email = :e"),
                                 {"e": FINANCE_EMAIL})
            ).scalar_one()  # fmt: skip
            finance = await db.get(User, user)
            assert finance is not None
        who = staff_principal(finance, session_id="bench")
        start, cpu = time.perf_counter(), time.process_time()
        async with rt.unit_of_work(who) as uow:
            summary = await close_quarter(uow, QUARTER, TODAY)
        settle, settle_cpu = time.perf_counter() - start, time.process_time() - cpu
        start = time.perf_counter()
        async with rt.engine.begin() as conn:
            floor_lines = (await conn.execute(text(FLOOR_SQL), {"last_day": QUARTER.end})).rowcount
        floor = time.perf_counter() - start
        async with rt.engine.begin() as conn:
            await conn.execute(text("DELETE FROM settlement_run_line WHERE run_id = -1"))
    finally:
        await rt.engine.dispose()
    return {
        "baseline_s": baseline,
        "baseline_cpu_s": baseline_cpu,
        "settle_cpu_s": settle_cpu,
        "baseline_groups": len(groups),
        "baseline_cents": sum(int(g[3]) for g in groups),
        "settle_s": settle,
        "floor_s": floor,
        "floor_lines": floor_lines,
        "rss_start_mb": rss_start,
        "peak_mb": _peak_mb(),
        "lines": summary.line_count,
        "rejected": summary.rejected_count,
        "total_cents": summary.total_cents,
        "digest": summary.digest,
    }


# ---- the parent: generate, run the child, report ----


def _child(url: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", url], check=True, capture_output=True, text=True
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def bench(backend: str, lines: int, tmp: str) -> dict[str, Any]:
    """Generate the quarter on ``backend``, measure in a child, drop the database."""
    with _setup.scratch_database(backend, tmp) as url:
        start = time.perf_counter()
        asyncio.run(_generate(url, lines))
        generated = time.perf_counter() - start
        result = _child(url)
    result["generate_s"] = generated
    return result


def report(backend: str, lines: int, r: dict[str, Any]) -> None:
    ratio = r["settle_s"] / r["baseline_s"]
    print(f"{backend}: {lines:,} delivery lines, {max(1, lines // LINES_PER_ALLOCATION):,} "
          f"allocations, {PROVIDERS} providers (generated in {r['generate_s']:.1f} s)")  # fmt: skip
    groups = r["baseline_groups"]
    print(f"  baseline (one SQL aggregate)  {r['baseline_s']:8.2f} s  "
          f"{lines / r['baseline_s']:>12,.0f} lines/s  ({groups} groups; "
          f"CPU here {r['baseline_cpu_s']:.2f} s)")  # fmt: skip
    print(f"  quarterly run (close_quarter) {r['settle_s']:8.2f} s  "
          f"{lines / r['settle_s']:>12,.0f} lines/s  {ratio:5.1f}x baseline  "
          f"(CPU here {r['settle_cpu_s']:.2f} s)")  # fmt: skip
    floor = r["floor_s"]
    print(f"  floor (one INSERT ... SELECT)  {floor:8.2f} s  {lines / floor:>12,.0f} lines/s  "
          f"{floor / r['baseline_s']:5.1f}x baseline  "
          f"({r['floor_lines']:,} lines priced and written by the database, no rules)")  # fmt: skip
    print(f"  peak memory of the run        {r['peak_mb']:8.0f} MB  "
          f"(after imports {r['rss_start_mb']:.0f} MB)")  # fmt: skip
    print(f"  run: {r['lines']:,} lines out, {r['rejected']:,} rejected, "
          f"total {r['total_cents']:,} cents, sha256 {r['digest'][:16]}")  # fmt: skip
    print(f"  quarterly run / floor: {r['settle_s'] / floor:.1f}x")
    within = ratio <= 3 and r["settle_s"] < 60 and r["peak_mb"] < 500
    print(f"  target (3x baseline, < 60 s, < 500 MB): {'met' if within else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(_measure(args.child))))
        return
    backends = ("sqlite", "postgresql") if args.db == "both" else (args.db,)
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            report(backend, args.lines, bench(backend, args.lines, tmp))


if __name__ == "__main__":
    main()
