"""consent.disclosures_for decides for a room of viewers at once; each viewer gets exactly the
decision consent.disclosure gives them alone, and one audit row per viewer who sees anything."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from keerpunt.consent import service as consent
from keerpunt.consent.service import Disclosure
from keerpunt.platform import audit
from keerpunt.platform.models import AuditEntry, Case, CaseMember
from keerpunt.platform.principal import Principal, family_principal, staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.uow import UnitOfWork
from tests.helpers import make_org, make_user
from tests.triage.factories import World, build_world

pytestmark = pytest.mark.anyio


async def _viewers(rt: Runtime, w: World) -> list[Principal]:
    outsider_org = await make_org(rt, "Elders")
    stranger = await make_user(rt, outsider_org, "Vera Vreemd", "triage_member")
    nobody = await make_user(rt, outsider_org, "Nico Niemand")
    async with rt.sessionmaker() as db:
        members = list(await db.scalars(select(CaseMember).where(CaseMember.case_id == w.case_id)))
    family = [family_principal(m) for m in members if m.user_id is None]
    return [
        staff_principal(w.expert),
        staff_principal(w.outsider_expert),
        staff_principal(w.coordinator),
        staff_principal(w.registrar),
        staff_principal(stranger),  # in the triage team, not at this table: pseudonymous
        staff_principal(nobody),  # no part in the case: nothing
        *family,
    ]


@pytest.mark.parametrize("with_consent", [True, False])
@pytest.mark.parametrize("family_at_table", [(), ("youth",), ("youth", "parent")])
async def test_the_batch_decides_for_each_viewer_as_the_single_path(
    runtime: Runtime, with_consent: bool, family_at_table: tuple[str, ...]
) -> None:
    w = await build_world(runtime, consent_to_expert_org=with_consent)
    viewers = await _viewers(runtime, w)
    present = tuple(w.members[role] for role in family_at_table)
    alone = []
    for v in viewers:
        async with runtime.unit_of_work(v) as uow:
            case = await uow.db.get(Case, w.case_id)
            assert case is not None
            alone.append(await consent.disclosure(uow, case, family_present=present))
    async with runtime.sessionmaker() as db, db.begin():
        uow = UnitOfWork(db=db, vault=runtime.vault, who=viewers[0])
        case = await db.get(Case, w.case_id)
        assert case is not None
        start = await db.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1))
        batch = await consent.disclosures_for(uow, case, viewers, family_present=present)
        # Asked again in the same batch (a view drawn for one viewer): the same answer, no
        # second audit row.
        again = await consent.disclosure(uow.acting_as(viewers[1]), case, family_present=present)
    assert batch == alone
    assert again == alone[1]
    assert {d.level for d in batch} >= {Disclosure.FULL, Disclosure.NOTHING}
    async with runtime.sessionmaker() as db:
        rows = list(
            await db.scalars(
                select(AuditEntry).where(AuditEntry.seq > (start or 0)).order_by(AuditEntry.seq)
            )
        )
        assert await audit.verify(db) == []
    readers = [v for v, d in zip(viewers, batch, strict=True) if d.level is not Disclosure.NOTHING]
    assert [r.actor for r in rows] == [v.actor for v in readers]
    assert all(r.action == "case.read" and r.case_id == w.case_id for r in rows)
    for r, d in zip(rows, [d for d in batch if d.level is not Disclosure.NOTHING], strict=True):
        assert f"records={list(d.record_ids)}" in r.detail
