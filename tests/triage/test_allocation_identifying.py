"""Free text of the manager zorgbemiddeling is written under the pseudonym: the reason of an
override, and with whom a dispute step was discussed and why. Like every other such text it
gets a second look at identifying data before it is saved (held, nothing written, the text
kept, the warning names what was found), is encrypted at rest, and is gone when the case is
shredded."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, insert, select

from keerpunt.consent import retention
from keerpunt.platform.errors import InvalidInput
from keerpunt.platform.models import AuditEntry, CaseKey
from keerpunt.platform.runtime import Runtime
from keerpunt.triage import allocation_service as alloc
from keerpunt.triage import plain_text
from keerpunt.triage.models import (
    Allocation,
    AllocationDispute,
    AllocationRotation,
    DisputeStep,
)
from tests.helpers import login
from tests.triage.test_allocation_service import Ret, accept, build_ret, request

pytestmark = pytest.mark.anyio

PHONE = "bel moeder op 06-12345678"
KEERPUNT = str(Path(sys.executable).with_name("keerpunt"))


async def _count(rt: Runtime, model: Any) -> int:
    async with rt.sessionmaker() as db:
        return int(await db.scalar(select(func.count()).select_from(model)) or 0)


async def _allocated(rt: Runtime) -> tuple[Ret, int]:
    ret = await build_ret(rt)
    rid = await request(rt, ret, ret.case_ids[0])
    await accept(rt, ret, rid)
    async with rt.sessionmaker() as db:
        aid = await db.scalar(select(Allocation.id))
    assert aid is not None
    return ret, aid


async def _disputed(rt: Runtime) -> tuple[Ret, int, int]:
    ret, aid = await _allocated(rt)
    async with rt.unit_of_work(ret.who) as uow:
        d = await alloc.open_dispute(uow, aid, ret.providers["Enver"], "Manager Enver", "Vol.")
        did = d.id
    return ret, aid, did


# ---- through the services ----


async def test_an_override_reason_with_identifying_data_is_held_until_looked_at_again(
    runtime: Runtime,
) -> None:
    ret = await build_ret(runtime)
    rid = await request(runtime, ret, ret.case_ids[0])
    timon = ret.providers["Timon"]
    with pytest.raises(InvalidInput) as exc:
        async with runtime.unit_of_work(ret.who) as uow:
            await alloc.decide_allocation(uow, rid, alloc.Choice(timon, f"Plek. {PHONE}", 0))
    assert set(exc.value.errors) == {"reason", "confirm_identifying"}
    assert isinstance(exc.value, alloc.IdentifyingText)
    assert exc.value.kinds == {"reason": ("een telefoonnummer",)}
    assert await _count(runtime, Allocation) == 0  # nothing written
    async with runtime.sessionmaker() as db:
        turns = (await db.scalars(select(AllocationRotation.turn))).all()
    assert all(t == 0 for t in turns)  # no turn given
    async with runtime.unit_of_work(ret.who) as uow:
        await alloc.decide_allocation(
            uow, rid, alloc.Choice(timon, f"Plek. {PHONE}", 0, confirmed=True)
        )
    assert await _count(runtime, Allocation) == 1


@pytest.mark.parametrize("field", ["spoke_with", "note"])
async def test_a_first_dispute_step_with_identifying_data_is_held(
    runtime: Runtime, field: str
) -> None:
    ret, aid = await _allocated(runtime)
    texts = {"spoke_with": "Manager Enver", "note": "Geen plek.", field: PHONE}
    with pytest.raises(alloc.IdentifyingText) as exc:
        async with runtime.unit_of_work(ret.who) as uow:
            await alloc.open_dispute(uow, aid, ret.providers["Enver"], **texts)
    assert set(exc.value.errors) == {field, "confirm_identifying"}
    assert await _count(runtime, AllocationDispute) == 0
    assert await _count(runtime, DisputeStep) == 0
    async with runtime.unit_of_work(ret.who) as uow:
        await alloc.open_dispute(uow, aid, ret.providers["Enver"], **texts, confirmed=True)
    assert await _count(runtime, DisputeStep) == 1


@pytest.mark.parametrize("field", ["spoke_with", "note"])
@pytest.mark.parametrize("action", ["escalate", "resolve"])
async def test_a_later_dispute_step_with_identifying_data_is_held(
    runtime: Runtime, field: str, action: str
) -> None:
    ret, _aid, did = await _disputed(runtime)
    step = alloc.escalate_dispute if action == "escalate" else alloc.resolve_dispute
    texts = {"spoke_with": "Contractmanager", "note": "Geen overeenstemming.", field: PHONE}
    with pytest.raises(alloc.IdentifyingText):
        async with runtime.unit_of_work(ret.who) as uow:
            await step(uow, did, **texts)
    async with runtime.sessionmaker() as db:
        d = await db.get(AllocationDispute, did)
        assert d is not None and d.status == "open" and d.level == "provider_manager"
    assert await _count(runtime, DisputeStep) == 1
    async with runtime.unit_of_work(ret.who) as uow:
        await step(uow, did, **texts, confirmed=True)
    assert await _count(runtime, DisputeStep) == 2


async def test_plain_text_is_saved_at_once(runtime: Runtime) -> None:
    ret, _aid, did = await _disputed(runtime)  # opened without any confirmation
    async with runtime.unit_of_work(ret.who) as uow:
        await alloc.escalate_dispute(uow, did, "Contractmanager GRJR", "Geen overeenstemming.")
    assert await _count(runtime, DisputeStep) == 2


# ---- stored encrypted, and shredded with the case ----


async def test_with_whom_a_step_was_discussed_is_encrypted_at_rest(runtime: Runtime) -> None:
    ret, aid, _did = await _disputed(runtime)
    async with runtime.sessionmaker() as db:
        row = (await db.execute(select(DisputeStep.spoke_with, DisputeStep.spoke_with_enc))).one()
    assert row.spoke_with == ""  # the old plain column is no longer written
    assert row.spoke_with_enc is not None and b"Enver" not in row.spoke_with_enc
    async with runtime.unit_of_work(ret.who) as uow:
        shown = await alloc.allocation_view(uow, aid)
    assert shown.disputes[0].steps[0].spoke_with == "Manager Enver"


async def test_a_step_stored_before_encryption_is_still_read(runtime: Runtime) -> None:
    ret, aid, did = await _disputed(runtime)
    async with runtime.sessionmaker() as db, db.begin():
        await db.execute(
            insert(DisputeStep).values(
                dispute_id=did,
                level="provider_manager",
                action="escalated",
                spoke_with="Oude tekst",
                spoke_with_enc=None,
                note_enc=None,
                by_id=ret.manager.id,
            )
        )
    async with runtime.unit_of_work(ret.who) as uow:
        shown = await alloc.allocation_view(uow, aid)
    assert [s.spoke_with for s in shown.disputes[0].steps] == ["Manager Enver", "Oude tekst"]


async def test_shredding_the_case_removes_the_dispute_and_reason_texts(runtime: Runtime) -> None:
    ret, aid, did = await _disputed(runtime)
    async with runtime.sessionmaker() as db, db.begin():
        # a step written before the texts were encrypted: its plain text must go too
        await db.execute(
            insert(DisputeStep).values(
                dispute_id=did,
                level="provider_manager",
                action="escalated",
                spoke_with="Oude tekst",
                by_id=ret.manager.id,
            )
        )
    policy = retention.RetentionPolicy(days_after_close=90, pilot_end=None, kpi_months=24)
    line = await retention.shred_on_request(runtime, policy, ret.case_ids[0], today=dt.date.today())
    assert line is not None
    async with runtime.sessionmaker() as db:
        rows = (
            await db.execute(
                select(DisputeStep.spoke_with, DisputeStep.spoke_with_enc, DisputeStep.note_enc)
            )
        ).all()
        reason = await db.scalar(select(Allocation.reason_enc))
    assert rows and all(
        r.spoke_with == "" and not r.spoke_with_enc and not r.note_enc for r in rows
    )
    assert reason is None
    async with runtime.unit_of_work(ret.who) as uow:
        shown = await alloc.allocation_view(uow, aid)
    assert all(s.spoke_with == "" and s.note is None for s in shown.disputes[0].steps)


# ---- plain text of older versions encrypted with the runtime keys ----


async def _legacy_steps(rt: Runtime, ret: Ret, did: int, *texts: str) -> None:
    """Steps as a version before faa57f59db60 wrote them: the text in the plain column."""
    async with rt.sessionmaker() as db, db.begin():
        for text in texts:
            await db.execute(
                insert(DisputeStep).values(
                    dispute_id=did,
                    level="provider_manager",
                    action="escalated",
                    spoke_with=text,
                    spoke_with_enc=None,
                    note_enc=None,
                    by_id=ret.manager.id,
                )
            )


async def _stored(rt: Runtime) -> list[tuple[str, bytes | None]]:
    async with rt.sessionmaker() as db:
        rows = await db.execute(
            select(DisputeStep.spoke_with, DisputeStep.spoke_with_enc).order_by(DisputeStep.id)
        )
    return [(r.spoke_with, r.spoke_with_enc) for r in rows.all()]


async def _encryption_audits(rt: Runtime) -> list[tuple[int | None, str]]:
    async with rt.sessionmaker() as db:
        rows = await db.execute(
            select(AuditEntry.case_id, AuditEntry.detail)
            .where(AuditEntry.action == "dispute.plain_text_encrypted")
            .order_by(AuditEntry.seq)
        )
    return [(r.case_id, r.detail) for r in rows.all()]


async def test_plain_texts_of_older_steps_are_encrypted_in_batches_and_audited(
    runtime: Runtime,
) -> None:
    ret, aid, did = await _disputed(runtime)
    await _legacy_steps(runtime, ret, did, "Oude tekst", "Manager Timon")
    done = await plain_text.encrypt_plain_spoke_with(runtime, batch_size=1)
    assert (done.encrypted, done.blanked) == (2, 0)
    stored = await _stored(runtime)
    assert [plain for plain, _ in stored] == ["", "", ""]
    assert all(enc and b"Oude" not in enc and b"Timon" not in enc for _, enc in stored)
    async with runtime.unit_of_work(ret.who) as uow:
        shown = await alloc.allocation_view(uow, aid)
    assert [s.spoke_with for s in shown.disputes[0].steps] == [
        "Manager Enver",
        "Oude tekst",
        "Manager Timon",
    ]
    audits = await _encryption_audits(runtime)
    assert [case for case, _ in audits] == [ret.case_ids[0]] * 2  # one batch of one step each
    assert all("Oude" not in detail for _, detail in audits)
    again = await plain_text.encrypt_plain_spoke_with(runtime)
    assert again.moved == 0
    assert len(await _encryption_audits(runtime)) == 2  # nothing to do, nothing audited


async def test_the_plain_text_of_a_shredded_case_is_blanked_not_encrypted(
    runtime: Runtime,
) -> None:
    ret, _aid, did = await _disputed(runtime)
    await _legacy_steps(runtime, ret, did, "Oude tekst")
    async with runtime.sessionmaker() as db, db.begin():  # a key shredded by an older version
        await db.execute(delete(CaseKey).where(CaseKey.case_id == ret.case_ids[0]))
    done = await plain_text.encrypt_plain_spoke_with(runtime)
    assert (done.encrypted, done.blanked) == (0, 1)
    assert (await _stored(runtime))[1] == ("", None)


async def test_the_command_moves_them_and_says_how_many(
    runtime: Runtime, database_url: str
) -> None:
    ret, aid, did = await _disputed(runtime)
    await _legacy_steps(runtime, ret, did, "Oude tekst")
    s = runtime.settings
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KEERPUNT_")},
        "KEERPUNT_DATABASE_URL": database_url,
        "KEERPUNT_SECRET_KEY": str(s.secret_key),
        "KEERPUNT_MASTER_KEYS": str(s.master_keys),
        "KEERPUNT_BSN_INDEX_KEY": str(s.bsn_index_key),
    }

    def command() -> str:
        out = subprocess.run(
            [KEERPUNT, "keys", "encrypt-plain", "--batch-size", "10"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    assert command().startswith("1 dispute step(s) moved out of plain text: 1 encrypted")
    assert command().startswith("0 dispute step(s)")
    async with runtime.unit_of_work(ret.who) as uow:
        shown = await alloc.allocation_view(uow, aid)
    assert [s.spoke_with for s in shown.disputes[0].steps] == ["Manager Enver", "Oude tekst"]
    assert [plain for plain, _ in await _stored(runtime)] == ["", ""]


async def test_the_app_encrypts_them_itself_after_it_starts(runtime: Runtime, app: Any) -> None:
    ret, _aid, did = await _disputed(runtime)
    await _legacy_steps(runtime, ret, did, "Oude tekst")
    async with app.router.lifespan_context(app):
        await asyncio.wait_for(app.state.encrypt_plain, timeout=30)
    assert [plain for plain, _ in await _stored(runtime)] == ["", ""]
    assert len(await _encryption_audits(runtime)) == 1


# ---- through the pages ----


async def _audit_count(rt: Runtime) -> int:
    return await _count(rt, AuditEntry)


async def test_the_decision_page_holds_a_reason_with_identifying_data(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    ret = await build_ret(runtime)
    csrf = await login(client, runtime, user_id=ret.manager.id)
    rid = await request(runtime, ret, ret.case_ids[0])
    typed = f"Timon heeft plek. {PHONE}."
    form = {
        "provider_id": str(ret.providers["Timon"]),
        "expected_turn": "0",
        "reason": typed,
        "csrf_token": csrf,
    }
    audits = await _audit_count(runtime)
    r = await client.post(f"/allocation/requests/{rid}/decide", data=form)
    assert r.status_code == 422, r.text
    assert "Let op: deze tekst bevat misschien een telefoonnummer." in r.text
    assert typed in r.text  # nothing typed is lost
    assert 'name="confirm_identifying"' in r.text
    assert 'aria-describedby="reason-hint reason-error"' in r.text
    assert 'id="reason-error"' in r.text
    assert await _count(runtime, Allocation) == 0
    assert await _audit_count(runtime) == audits
    r = await client.post(
        f"/allocation/requests/{rid}/decide", data={**form, "confirm_identifying": "yes"}
    )
    assert r.status_code == 303, r.text
    assert await _count(runtime, Allocation) == 1


@pytest.mark.parametrize("field", ["spoke_with", "note"])
async def test_the_dispute_form_holds_identifying_data(
    client: httpx.AsyncClient, runtime: Runtime, field: str
) -> None:
    ret, aid = await _allocated(runtime)
    csrf = await login(client, runtime, user_id=ret.manager.id)
    form = {
        "provider_id": str(ret.providers["Enver"]),
        "spoke_with": "Manager Enver",
        "note": "Geen plek.",
        field: PHONE,
        "csrf_token": csrf,
    }
    audits = await _audit_count(runtime)
    r = await client.post(f"/allocation/{aid}/disputes", data=form)
    assert r.status_code == 422, r.text
    assert "Let op: deze tekst bevat misschien een telefoonnummer." in r.text
    assert PHONE in r.text
    assert 'name="confirm_identifying"' in r.text
    assert f'id="{field}-error"' in r.text and f"{field}-error" in _describedby(r.text, field)
    assert await _count(runtime, AllocationDispute) == 0
    assert await _count(runtime, DisputeStep) == 0
    assert await _audit_count(runtime) == audits
    r = await client.post(
        f"/allocation/{aid}/disputes", data={**form, "confirm_identifying": "yes"}
    )
    assert r.status_code == 303, r.text
    assert await _count(runtime, DisputeStep) == 1


@pytest.mark.parametrize("field", ["spoke_with", "note"])
@pytest.mark.parametrize("action", ["escalate", "resolve"])
async def test_a_later_step_on_the_page_holds_identifying_data(
    client: httpx.AsyncClient, runtime: Runtime, field: str, action: str
) -> None:
    ret, aid, did = await _disputed(runtime)
    csrf = await login(client, runtime, user_id=ret.manager.id)
    form = {
        "allocation_id": str(aid),
        "spoke_with": "Contractmanager",
        "note": "Geen overeenstemming.",
        field: PHONE,
        "csrf_token": csrf,
    }
    audits = await _audit_count(runtime)
    r = await client.post(f"/allocation/disputes/{did}/{action}", data=form)
    assert r.status_code == 422, r.text
    assert "Let op: deze tekst bevat misschien een telefoonnummer." in r.text
    assert PHONE in r.text
    assert 'name="confirm_identifying"' in r.text
    assert f"{field}-error" in _describedby(r.text, field)
    assert await _count(runtime, DisputeStep) == 1
    assert await _audit_count(runtime) == audits
    r = await client.post(
        f"/allocation/disputes/{did}/{action}", data={**form, "confirm_identifying": "yes"}
    )
    assert r.status_code == 303, r.text
    assert await _count(runtime, DisputeStep) == 2


def _describedby(html: str, name: str) -> str:
    """The aria-describedby of the form control named ``name``."""
    tag = re.search(rf'<(?:input|textarea)[^>]*name="{name}"[^>]*>', html)
    assert tag is not None, name
    found = re.search(r'aria-describedby="([^"]*)"', tag.group(0))
    return found.group(1) if found else ""
