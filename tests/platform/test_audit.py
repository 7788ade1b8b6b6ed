"""The audit chain detects a changed, deleted or inserted row."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, update

from keerpunt.platform import audit
from keerpunt.platform.models import AuditEntry
from keerpunt.platform.principal import Principal
from keerpunt.platform.runtime import Runtime

pytestmark = pytest.mark.anyio

WHO = Principal(
    session_id="s",
    display_name="Anna",
    user_id=1,
    organisation_id=2,
    staff_roles=frozenset({"coordinator"}),
)


async def _write(rt: Runtime, n: int) -> None:
    async with rt.sessionmaker() as db, db.begin():
        for i in range(n):
            await audit.record(db, WHO, "case.read", case_id=7, purpose="triage", detail=f"#{i}")


async def _verify(rt: Runtime) -> list[audit.AuditProblem]:
    async with rt.sessionmaker() as db:
        return await audit.verify(db)


async def test_intact_chain_verifies(runtime: Runtime) -> None:
    await _write(runtime, 5)
    assert await _verify(runtime) == []


async def test_changed_row_is_detected(runtime: Runtime) -> None:
    await _write(runtime, 5)
    async with runtime.sessionmaker() as db, db.begin():
        await db.execute(update(AuditEntry).where(AuditEntry.seq == 3).values(actor="user:99"))
    problems = await _verify(runtime)
    assert [p.seq for p in problems] == [3]
    assert "changed" in problems[0].reason


async def test_deleted_middle_row_is_detected(runtime: Runtime) -> None:
    await _write(runtime, 5)
    async with runtime.sessionmaker() as db, db.begin():
        await db.execute(delete(AuditEntry).where(AuditEntry.seq == 2))
    assert {p.seq for p in await _verify(runtime)} >= {2}


async def test_deleted_newest_row_is_detected(runtime: Runtime) -> None:
    await _write(runtime, 5)
    async with runtime.sessionmaker() as db, db.begin():
        await db.execute(delete(AuditEntry).where(AuditEntry.seq == 5))
    assert any("newest" in p.reason for p in await _verify(runtime))


async def test_concurrent_appends_never_fork_the_chain(runtime: Runtime) -> None:
    import anyio

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(_write, runtime, 3)
    assert await _verify(runtime) == []
