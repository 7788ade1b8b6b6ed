"""A registered case with a family, a team and a planned session, through the real services."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select

from keerpunt.consent import service as consent
from keerpunt.consent.service import Decision, Purpose
from keerpunt.platform.models import Case, CaseMember, Organisation, User
from keerpunt.platform.principal import staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.triage import service as triage
from tests.helpers import make_org, make_user

YES = {key: True for key, _q, _w in triage.ENTRY_QUESTIONS}
ENTRY_FORM_YES = {key: "yes" for key, _q, _w in triage.ENTRY_QUESTIONS}  # as the form posts it


@dataclass
class World:
    case_id: int
    session_id: int
    registrar: User
    coordinator: User
    expert: User  # org named in the consent
    outsider_expert: User  # invited, but their org is not named in the consent
    provider: Organisation
    members: dict[str, int]  # role -> case member id (youth, parent, jim)


async def build_world(rt: Runtime, *, consent_to_expert_org: bool = True) -> World:
    wijkteam = await make_org(rt, "Wijkteam", kind="other")
    penvoerder = await make_org(rt, "Pactum", is_penvoerder=True, agb_code="98000005")
    karakter = await make_org(rt, "Karakter", agb_code="98000004")
    accare = await make_org(rt, "Accare", agb_code="98000001")
    await make_org(rt, "Gemeente Deventer", kind="municipality", cbs_code="0150")
    registrar = await make_user(rt, wijkteam, "Wim Wijkteam", "registrar")
    coordinator = await make_user(rt, penvoerder, "Carla Coord", "coordinator")
    expert = await make_user(rt, karakter, "Ruud Regie", "triage_member", "regiebehandelaar")
    outsider = await make_user(rt, accare, "Sanne Systeem", "triage_member", "systeembehandelaar")
    today = dt.date.today()
    async with rt.unit_of_work(staff_principal(registrar)) as uow:
        case = await triage.register_case(
            uow,
            triage.Registration(
                answers=YES,
                youth_name="Sem Canarie",
                birth_date=today.replace(year=today.year - 14),
                bsn="111222333",
                situation="Geheim-verhaal-XYZ",
                parent_names=("Ma Canarie", ""),
                jim_name="Oom Kees",
                municipality_id=None,
            ),
        )
        members = {
            m.role: m.id
            for m in await uow.db.scalars(select(CaseMember).where(CaseMember.case_id == case.id))
            if m.role in {"youth", "parent", "jim"}
        }
        if consent_to_expert_org:
            for role in ("youth", "parent"):
                await consent.record_consent(
                    uow,
                    case,
                    subject_member_id=members[role],
                    purpose=Purpose.INFORMATION_EXCHANGE,
                    decision=Decision.CONSENT,
                    recipient_org_id=karakter.id,
                    recipient_role=None,
                    obtained_how="in_person",
                    explanation="Uitgelegd wat het triageteam doet.",
                    valid_until=None,
                )
        case_id = case.id
    async with rt.unit_of_work(staff_principal(coordinator)) as uow:
        session = await triage.plan_session(
            uow, case_id, dt.datetime.now(dt.UTC), [expert.id, outsider.id]
        )
    return World(case_id, session.id, registrar, coordinator, expert, outsider, karakter, members)


async def case_row(rt: Runtime, case_id: int) -> Case:
    async with rt.sessionmaker() as db:
        case = await db.get(Case, case_id)
        assert case is not None
        return case
