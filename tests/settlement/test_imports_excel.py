"""Importing files as a Dutch finance clerk saves them from Excel (issue #5): "Opslaan als CSV"
(Windows-1252) just works and says how it was read; a file past the upload limit is told so on
the import page, not as an expired form; allocations are written in one batch, whatever the
number of rows. Real database (both backends), real command, real app."""

from __future__ import annotations

import asyncio
import html
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select, text

from keerpunt.platform.models import AuditEntry
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.security import MAX_FORM_BYTES
from keerpunt.settlement.imports import (
    Encoding,
    ImportKind,
    ImportRejected,
    import_file,
    read_table,
)
from keerpunt.settlement.models import Allocation as AllocationRow
from keerpunt.settlement.models import Contract
from keerpunt.settlement.models import Delivery as DeliveryRow
from tests.conftest import LiveServer
from tests.helpers import login, make_user
from tests.settlement.factories import principal
from tests.settlement.test_imports import (
    ALLOCATION_HEADER,
    CONTRACT_HEADER,
    DELIVERY_HEADER,
    KEERPUNT,
    counts,
    csv_bytes,
    delivery,
    run_import,
    with_allocation,
    with_pseudonym,
)
from tests.settlement.test_records import build
from tests.settlement.test_routes import text_of


def excel_csv(rows: list[list[str]]) -> bytes:
    """A CSV file as Dutch Excel saves "CSV (gescheiden door lijstscheidingsteken)"."""
    return ("\r\n".join(";".join(r) for r in rows) + "\r\n").encode("cp1252")


# A text column with é, ë, € and an en dash (all in Windows-1252, none in ASCII).
ZOE = "Begeleiding Zoë – één dag, café"
CONTRACTS_1252 = [
    CONTRACT_HEADER,
    ["Altra", "45", "45A52", ZOE, "04", "€ 118,75", "1-1-2026", ""],
]


# ---- pure: which bytes are read how ----


def test_excel_csv_is_read_as_windows_1252() -> None:
    table = read_table(excel_csv(CONTRACTS_1252))
    assert table.encoding is Encoding.CP1252
    assert table.rows[0][1][3] == ZOE and table.rows[0][1][5] == "€ 118,75"


@pytest.mark.parametrize("bom", [False, True])
def test_utf8_with_or_without_bom_is_read_as_utf8(bom: bool) -> None:
    table = read_table(csv_bytes(CONTRACTS_1252, bom=bom))
    assert table.encoding is Encoding.UTF8
    assert table.header[0] == "Aanbieder" and table.rows[0][1][3] == ZOE


def test_excel_unicode_text_is_read_as_utf16() -> None:
    data = "\r\n".join("\t".join(r) for r in CONTRACTS_1252).encode("utf-16")
    table = read_table(data)
    assert table.encoding is Encoding.UTF16 and table.rows[0][1][3] == ZOE


@pytest.mark.parametrize("byte", [0x81, 0x8D, 0x8F, 0x90, 0x9D])
def test_bytes_windows_1252_has_no_letter_for_are_refused(byte: int) -> None:
    data = excel_csv(CONTRACTS_1252) + b"Altra;45;45A53;x" + bytes([byte]) + b";04;1;1-1-2026;\r\n"
    with pytest.raises(ImportRejected) as caught:
        read_table(data)
    (error,) = caught.value.errors
    assert error.row == 1
    assert error.text() == (
        f"Het bestand is niet te lezen: het is geen UTF-8 en geen Windows-1252 (teken "
        f"0x{byte:02X} op regel 3). Sla het in Excel op als 'CSV UTF-8 (door komma's "
        f"gescheiden)' of als Excel-werkmap (.xlsx)."
    )


# ---- with the database ----


@pytest.mark.anyio
async def test_a_windows_1252_file_is_imported_with_its_accents(runtime: Runtime) -> None:
    w = await build(runtime)
    result = await run_import(runtime, w, ImportKind.CONTRACTS, excel_csv(CONTRACTS_1252))
    assert result.count == 1 and result.encoding is Encoding.CP1252
    async with runtime.sessionmaker() as db:
        contract = await db.scalar(
            select(Contract).where(Contract.provider_id == w.region.altra.id)
        )
        audit = await db.scalar(
            select(AuditEntry.detail).where(AuditEntry.action == "settlement.import.contracts")
        )
    assert contract is not None
    assert (contract.description, contract.tariff_cents) == (ZOE, 11875)
    assert audit is not None and " encoding=cp1252 " in audit


@contextmanager
def statements(rt: Runtime) -> Iterator[list[str]]:
    """Every SQL statement sent to the database while inside."""
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(args[2])

    event.listen(rt.engine.sync_engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(rt.engine.sync_engine, "before_cursor_execute", count)


def allocation_file(case: str, numbers: range) -> bytes:
    rows = [ALLOCATION_HEADER] + [
        [f"T-{n}", case, "Horizon", "0193", "generiek", "", "", "", "", "", "500", "1-1-2026", "30-9-2026"]  # noqa: E501
        for n in numbers
    ]  # fmt: skip
    return csv_bytes(rows)


@pytest.mark.anyio
async def test_importing_allocations_takes_as_many_statements_for_40_rows_as_for_2(
    runtime: Runtime,
) -> None:
    w = await with_pseudonym(runtime, await build(runtime))
    case = w.case_pseudonym  # type: ignore[attr-defined]
    with statements(runtime) as small:
        assert (
            await run_import(runtime, w, ImportKind.ALLOCATIONS, allocation_file(case, range(1, 3)))
        ).count == 2
    with statements(runtime) as large:
        assert (
            await run_import(
                runtime, w, ImportKind.ALLOCATIONS, allocation_file(case, range(10, 50))
            )
        ).count == 40
    assert len(large) <= len(small), "\n".join(x[:90] for x in large)
    async with runtime.sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(AllocationRow)) == 42
        added = list(
            await db.scalars(
                select(AuditEntry).where(AuditEntry.action == "settlement.allocation.add")
            )
        )
        total = await db.scalar(
            select(AuditEntry.detail).where(
                AuditEntry.action == "settlement.import.allocations",
                AuditEntry.detail.like("rows=40 %"),
            )
        )
    # One audit row per allocation, on its case, naming the file row and the file's hash.
    assert len(added) == 42 and all(a.case_id == w.case_id for a in added)
    assert total is not None
    sha = total.split("sha256=")[1].split()[0]
    last = next(a for a in added if " number=T-49 " in a.detail)
    assert last.detail.endswith(f" via=import row=41 sha256={sha}")


@pytest.mark.anyio
async def test_a_bad_allocation_row_in_a_large_file_still_imports_nothing(
    runtime: Runtime,
) -> None:
    w = await with_pseudonym(runtime, await build(runtime))
    case = w.case_pseudonym  # type: ignore[attr-defined]
    data = (
        allocation_file(case, range(1, 30))
        + b"T-99;x;Horizon;0193;generiek;;;;;;;1-1-2026;30-9-2026\r\n"
    )
    before = await counts(runtime)
    with pytest.raises(ImportRejected) as caught:
        await run_import(runtime, w, ImportKind.ALLOCATIONS, data)
    assert [(e.row, e.column, e.text()) for e in caught.value.errors] == [
        (31, "case", "Er is geen casus 'x'.")
    ]
    assert await counts(runtime) == before


@pytest.mark.anyio
async def test_importing_deliveries_takes_as_many_statements_for_20_lines_as_for_2(
    runtime: Runtime,
) -> None:
    w = await with_allocation(runtime)

    def lines(month: int, days: int) -> bytes:
        return csv_bytes(
            [DELIVERY_HEADER]
            + [delivery("T-100", "45A52", f"{d}-{month}-2026", f"{d}-{month}-2026", "1") for d in range(1, days + 1)]  # noqa: E501
        )  # fmt: skip

    with statements(runtime) as small:
        assert (await run_import(runtime, w, ImportKind.DELIVERIES, lines(7, 2))).count == 2
    with statements(runtime) as large:
        assert (await run_import(runtime, w, ImportKind.DELIVERIES, lines(8, 20))).count == 20
    assert len(large) <= len(small), (len(small), len(large))
    async with runtime.sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(DeliveryRow)) == 22


def altra_contract(w: Any) -> Any:
    return select(Contract.description).where(Contract.provider_id == w.region.altra.id)


# ---- the command ----


@pytest.mark.anyio
async def test_keerpunt_import_reads_an_excel_csv_and_says_how(
    runtime: Runtime, database_url: str, tmp_path: Path
) -> None:
    w = await build(runtime)
    s = runtime.settings
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KEERPUNT_")},
        "KEERPUNT_DATABASE_URL": database_url,
        "KEERPUNT_SECRET_KEY": str(s.secret_key),
        "KEERPUNT_MASTER_KEYS": str(s.master_keys),
        "KEERPUNT_BSN_INDEX_KEY": str(s.bsn_index_key),
    }
    path = tmp_path / "tarieven.csv"
    path.write_bytes(excel_csv(CONTRACTS_1252))
    done = subprocess.run(  # noqa: ASYNC221 - the command, as an operator runs it
        [KEERPUNT, "import", "contracts", str(path), "--as", w.region.finance.email],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1] == "Gelezen als Windows-1252 (Excel)."
    async with runtime.sessionmaker() as db:
        assert await db.scalar(altra_contract(w)) == ZOE


# ---- the page ----


async def audit_rows(rt: Runtime) -> int:
    async with rt.sessionmaker() as db:
        return await db.scalar(select(func.count()).select_from(AuditEntry)) or 0


@pytest.mark.anyio
async def test_the_page_imports_an_excel_csv_and_says_how_it_was_read(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await build(runtime)
    csrf = await login(client, runtime, user_id=w.region.finance.id)
    r = await client.post(
        "/settlement/import",
        data={"csrf_token": csrf, "kind": "contracts"},
        files={"file": ("tarieven.csv", excel_csv(CONTRACTS_1252), "text/csv")},
    )
    assert r.status_code == 303
    page = text_of((await client.get(r.headers["location"])).text)
    assert "Het bestand is ingelezen. Aantal regels: 1." in page
    assert "Gelezen als Windows-1252 (Excel)." in page
    async with runtime.sessionmaker() as db:
        assert await db.scalar(altra_contract(w)) == ZOE

    # A name not found in a file read as Windows-1252: the page says how it was read.
    bad = excel_csv([CONTRACT_HEADER, ["Zoë Zorg", "45", "45A53", "x", "04", "1", "1-1-2026", ""]])
    r = await client.post(
        "/settlement/import",
        data={"csrf_token": csrf, "kind": "contracts"},
        files={"file": ("tarieven.csv", bad, "text/csv")},
    )
    assert r.status_code == 422
    page = html.unescape(text_of(r.text))
    assert "Er is geen aanbieder met naam of AGB-code 'Zoë Zorg'." in page
    assert "Gelezen als Windows-1252 (Excel). Ziet u vreemde tekens in namen?" in page

    # The same file in UTF-8: how it was read, and no advice to save it as UTF-8.
    r = await client.post(
        "/settlement/import",
        data={"csrf_token": csrf, "kind": "contracts"},
        files={"file": ("tarieven.csv", bad.decode("cp1252").encode(), "text/csv")},
    )
    page = html.unescape(text_of(r.text))
    assert "Er is geen aanbieder met naam of AGB-code 'Zoë Zorg'." in page
    assert "Gelezen als UTF-8." in page and "Ziet u vreemde tekens" not in page


def too_large_file() -> bytes:
    row = b"Horizon;T-100;45A52;1-7-2026;31-7-2026;1\r\n"
    return ";".join(DELIVERY_HEADER).encode() + b"\r\n" + row * (MAX_FORM_BYTES // len(row) + 1)


@pytest.mark.anyio
@pytest.mark.parametrize("token", ["right", "wrong", "none"])
async def test_a_file_past_the_limit_is_told_so_on_the_page_and_nothing_is_read(
    client: httpx.AsyncClient, runtime: Runtime, token: str
) -> None:
    w = await with_allocation(runtime)
    csrf = await login(client, runtime, user_id=w.region.finance.id)
    fields = {"kind": "deliveries"}
    if token != "none":
        fields["csrf_token"] = csrf if token == "right" else "x" * len(csrf)
    before = await audit_rows(runtime)
    r = await client.post(
        "/settlement/import",
        data=fields,
        files={"file": ("landelijk.csv", too_large_file(), "text/csv")},
    )
    # Whatever the token: the body is not read, so not processed; the page says why.
    assert r.status_code == 413
    page = text_of(r.text)
    assert "Het bestand is te groot (meer dan 10 MB). Splits het bestand in delen" in page
    assert "Dit formulier is verlopen" not in page
    assert 'name="csrf_token"' in r.text  # the form, to try again with a smaller file
    assert await counts_of_deliveries(runtime) == 0
    assert await audit_rows(runtime) == before


@pytest.mark.anyio
async def test_over_a_real_connection_the_sender_gets_the_page_not_a_broken_connection(
    runtime: Runtime, live_server: LiveServer
) -> None:
    # uvicorn, not the test transport: an answer sent while the upload is still coming in
    # must reach the sender (the rest of the body is read and thrown away first).
    w = await with_allocation(runtime)
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as client:
        csrf = await login(client, runtime, user_id=w.region.finance.id)
        r = await client.post(
            "/settlement/import",
            data={"csrf_token": csrf, "kind": "deliveries"},
            files={"file": ("landelijk.csv", too_large_file(), "text/csv")},
        )
        assert r.status_code == 413
        assert "Het bestand is te groot (meer dan 10 MB)." in text_of(r.text)
        # The connection is still good for the next request.
        assert (await client.get("/settlement/import")).status_code == 200
    assert await counts_of_deliveries(runtime) == 0


async def counts_of_deliveries(rt: Runtime) -> int:
    async with rt.sessionmaker() as db:
        return await db.scalar(select(func.count()).select_from(DeliveryRow)) or 0


@pytest.mark.anyio
async def test_a_file_past_the_limit_is_told_so_in_english_too(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await with_allocation(runtime)
    csrf = await login(client, runtime, user_id=w.region.finance.id)
    r = await client.post("/language", data={"csrf_token": csrf, "lang": "en"})
    assert r.status_code == 303
    r = await client.post(
        "/settlement/import",
        data={"csrf_token": csrf, "kind": "deliveries"},
        files={"file": ("landelijk.csv", too_large_file(), "text/csv")},
    )
    assert r.status_code == 413
    assert "The file is too large (more than 10 MB)." in text_of(r.text)


@pytest.mark.anyio
async def test_a_normal_upload_with_a_wrong_or_no_token_is_still_refused(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await with_allocation(runtime)
    csrf = await login(client, runtime, user_id=w.region.finance.id)
    data = csv_bytes([DELIVERY_HEADER, delivery("T-100", "45A52", "1-7-2026", "31-7-2026", "1")])
    for fields in (
        {"kind": "deliveries"},
        {"kind": "deliveries", "csrf_token": csrf[::-1]},
        {"kind": "deliveries", "csrf_token": "é" * len(csrf)},  # not ASCII: a 403, not a 500
    ):
        r = await client.post(
            "/settlement/import", data=fields, files={"file": ("juli.csv", data, "text/csv")}
        )
        assert r.status_code == 403
        assert "Dit formulier is verlopen" in r.text
    # A token in the header does not lift the limit.
    r = await client.post(
        "/settlement/import",
        data={"kind": "deliveries"},
        files={"file": ("landelijk.csv", too_large_file(), "text/csv")},
        headers={"x-csrf-token": csrf},
    )
    assert r.status_code == 413
    assert await counts_of_deliveries(runtime) == 0


@pytest.mark.anyio
async def test_any_other_form_past_the_limit_gets_a_plain_message(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await with_allocation(runtime)
    csrf = await login(client, runtime, user_id=w.region.finance.id)
    r = await client.post(
        "/language",
        data={"csrf_token": csrf, "lang": "en", "pad": "x" * (MAX_FORM_BYTES + 1)},
    )
    assert r.status_code == 413
    assert r.text == "Wat u verstuurde is te groot (meer dan 10 MB). Er is niets opgeslagen."


# ---- the menu: each role sees what it can use ----


def menu(html: str) -> list[str]:
    nav = html.split('<nav aria-label="Hoofdmenu">', 1)[1].split("</nav>", 1)[0]
    return [part.split(">", 1)[1].split("<", 1)[0] for part in nav.split("<a ")[1:]]


@pytest.mark.anyio
async def test_a_funder_sees_only_the_monitor_and_provider_staff_without_a_role_their_care(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await build(runtime)
    funder = await make_user(runtime, w.zwolle, "Femke Financier", "funder")
    await login(client, runtime, user_id=funder.id)
    home = await client.get("/")  # the "Keerpunt" link: the monitor, not an empty case list
    assert home.status_code == 303 and home.headers["location"].endswith("/settlement/monitor")
    page = await client.get("/settlement/monitor")
    assert page.status_code == 200
    assert menu(page.text) == ["Monitor"]

    await login(client, runtime, user_id=w.horizon_staff.id)  # no role at all
    page = await client.get("/cases")
    assert page.status_code == 200
    # A provider's staff enter their own organisation's care (and import it from there).
    assert menu(page.text) == ["Casussen", "Toewijzingen"]

    await login(client, runtime, user_id=w.region.finance.id)
    assert menu((await client.get("/cases")).text) == [
        "Casussen",
        "Afrekening",
        "Kassier",
        "Toewijzingen",
        "Monitor",
        "Tarieven triageteam",
        "API-sleutel",
    ]


@pytest.mark.anyio
async def test_two_files_with_the_same_number_at_once_import_one_and_refuse_the_other(
    runtime: Runtime,
) -> None:
    """PostgreSQL: the second file passed its checks before the first was committed; the
    unique number stops it at the INSERT, and it is refused whole with a clear reason."""
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one writer at a time: the second file sees the first")
    w = await with_pseudonym(runtime, await build(runtime))
    case = w.case_pseudonym  # type: ignore[attr-defined]
    who = principal(w.region.finance)
    async with runtime.unit_of_work(who) as first:
        await import_file(first, ImportKind.ALLOCATIONS, allocation_file(case, range(1, 3)), "a")
        second = asyncio.create_task(
            run_import(runtime, w, ImportKind.ALLOCATIONS, allocation_file(case, range(2, 5)))
        )
        # Wait until the second file waits for the first one's number (a lock), then commit.
        async with runtime.engine.connect() as watch:
            while not await watch.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ):
                assert not second.done(), second
                await asyncio.sleep(0.01)
    with pytest.raises(ImportRejected) as caught:
        await second
    (error,) = caught.value.errors
    assert error.text().startswith("Terwijl dit bestand werd ingelezen, heeft iemand anders")
    async with runtime.sessionmaker() as db:
        numbers = set(await db.scalars(select(AllocationRow.number)))
    assert numbers == {"T-1", "T-2"}
