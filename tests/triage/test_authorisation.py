"""Who may do what, as a table: each state-changing request by someone who may not do it is
refused and changes nothing."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import func, select

from keerpunt.consent.models import ConsentRecord
from keerpunt.platform.models import Case
from keerpunt.platform.runtime import Runtime
from keerpunt.triage.models import TriageSession
from tests.helpers import login
from tests.triage.factories import ENTRY_FORM_YES, World, build_world

pytestmark = pytest.mark.anyio


def _register(w: World) -> tuple[str, dict[str, str]]:
    return "/cases/new", {
        **ENTRY_FORM_YES,
        "youth_name": "X Y",
        "birth_date": "2012-01-01",
        "parent_1": "Ouder",
    }


def _plan(w: World) -> tuple[str, dict[str, str]]:
    return f"/cases/{w.case_id}/sessions", {"scheduled_at": "2026-12-01T10:00"}


def _consent(w: World) -> tuple[str, dict[str, str]]:
    return f"/cases/{w.case_id}/consents", {
        "subject_member_id": str(w.members["youth"]),
        "purpose": "information_exchange",
        "recipient": "all",
        "decision": "consent",
        "obtained_how": "in_person",
        "explanation": "Uitgelegd wat het triageteam doet.",
    }


def _close(w: World) -> tuple[str, dict[str, str]]:
    return f"/triage/sessions/{w.session_id}/close", {}


async def _counts(rt: Runtime) -> tuple[int | None, ...]:
    async with rt.sessionmaker() as db:
        return (
            await db.scalar(select(func.count()).select_from(Case)),
            await db.scalar(select(func.count()).select_from(TriageSession)),
            await db.scalar(select(func.count()).select_from(ConsentRecord)),
            await db.scalar(select(func.count()).where(TriageSession.status == "closed")),
        )


@pytest.mark.parametrize(
    ("action", "who"),
    [
        (_register, "expert"),  # only a registrar (aanmelder) registers
        (_register, "coordinator"),
        (_plan, "expert"),  # only the coordinator plans
        (_plan, "registrar"),
        (_consent, "expert"),  # consent is recorded by who registered the case
        (_close, "expert"),  # only the chair closes
        (_close, "parent"),
    ],
)
async def test_refused_and_nothing_changes(
    client: httpx.AsyncClient,
    runtime: Runtime,
    action: Callable[[World], tuple[str, dict[str, str]]],
    who: str,
) -> None:
    world = await build_world(runtime, consent_to_expert_org=False)
    if who == "parent":
        csrf = await login(client, runtime, member_id=world.members["parent"])
    else:
        csrf = await login(client, runtime, user_id=getattr(world, who).id)
    before = await _counts(runtime)
    url, data = action(world)
    r = await client.post(url, data=data, headers={"X-CSRF-Token": csrf})
    assert r.status_code in (403, 404), (r.status_code, r.text[:200])
    assert await _counts(runtime) == before


async def test_an_expert_cannot_withdraw_a_familys_consent(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime)
    async with runtime.sessionmaker() as db:
        record_id = await db.scalar(select(ConsentRecord.id).limit(1))
    csrf = await login(client, runtime, user_id=world.expert.id)
    r = await client.post(f"/consents/{record_id}/withdraw", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 403
    async with runtime.sessionmaker() as db:
        rec = await db.get(ConsentRecord, record_id)
        assert rec is not None and rec.withdrawn_at is None


async def test_a_shredded_case_shows_only_its_pseudonym_even_to_its_registrar(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime)
    async with runtime.sessionmaker() as db, db.begin():
        await runtime.vault.shred(db, world.case_id)
    await login(client, runtime, user_id=world.registrar.id)
    page = await client.get(f"/cases/{world.case_id}")
    assert page.status_code == 200
    assert "Sem Canarie" not in page.text and "Ma Canarie" not in page.text
