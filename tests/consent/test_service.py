"""The decision point on the real databases: the youth-alone exception and the family at the
table, recorded and honoured by ``disclosure``; bad input writes nothing."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from keerpunt.consent import service as consent
from keerpunt.consent.models import YouthAloneException
from keerpunt.consent.service import Decision, Disclosure, Purpose
from keerpunt.platform.errors import InvalidInput, NotAllowed, NotFound
from keerpunt.platform.models import AuditEntry, Case, User
from keerpunt.platform.principal import staff_principal
from keerpunt.platform.runtime import Runtime
from tests.helpers import make_org, make_user
from tests.triage.factories import World, build_world

pytestmark = pytest.mark.anyio


async def _level(
    rt: Runtime, world: World, user: User, present: tuple[int, ...] = ()
) -> consent.DisclosureDecision:
    async with rt.unit_of_work(staff_principal(user)) as uow:
        case = await uow.db.get(Case, world.case_id)
        assert case is not None
        return await consent.disclosure(uow, case, family_present=present)


async def _record(
    rt: Runtime, world: World, role: str, decision: Decision, org_id: int | None = None
) -> int:
    async with rt.unit_of_work(staff_principal(world.registrar)) as uow:
        case = await uow.db.get(Case, world.case_id)
        assert case is not None
        rec = await consent.record_consent(
            uow,
            case,
            subject_member_id=world.members[role],
            purpose=Purpose.INFORMATION_EXCHANGE,
            decision=decision,
            recipient_org_id=org_id,
            recipient_role=None,
            obtained_how="in_person",
            explanation="Uitgelegd wat het triageteam doet.",
            valid_until=None,
        )
        return rec.id


async def _youth_alone(rt: Runtime, world: World, user: User, **kw: str) -> int:
    async with rt.unit_of_work(staff_principal(user)) as uow:
        case = await uow.db.get(Case, world.case_id)
        assert case is not None
        exc = await consent.record_youth_alone(uow, case, **kw)
        return exc.id


async def test_youth_alone_exception_opens_the_case_on_the_youths_consent(
    runtime: Runtime,
) -> None:
    world = await build_world(runtime, consent_to_expert_org=False)  # the youth is 14
    await _record(runtime, world, "youth", Decision.CONSENT, world.provider.id)
    await _record(runtime, world, "parent", Decision.OBJECTION)  # the parent refuses
    assert (await _level(runtime, world, world.expert)).level is Disclosure.PSEUDONYMOUS

    reason = "Sem wil de hulp na het gesprek nog steeds, ook na nadenken."
    exc_id = await _youth_alone(
        runtime, world, world.registrar, ground="youth_persists", reason=reason
    )
    decision = await _level(runtime, world, world.expert)
    assert decision.level is Disclosure.FULL
    assert decision.reason == f"youth_alone:{exc_id}"
    async with runtime.sessionmaker() as db:
        row = await db.get(YouthAloneException, exc_id)
        assert row is not None and row.reason_enc is not None
        assert reason.encode() not in row.reason_enc  # encrypted at rest
        assert row.recorded_by_id == world.registrar.id and row.recorded_at is not None
        actions = (await db.scalars(select(AuditEntry.action))).all()
        assert "consent.youth_alone" in actions
        last_read = await db.scalar(
            select(AuditEntry.detail)
            .where(AuditEntry.action == "case.read")
            .order_by(AuditEntry.seq.desc())
            .limit(1)
        )
        assert last_read is not None and f"youth_alone:{exc_id}" in last_read

    async with runtime.unit_of_work(staff_principal(world.registrar)) as uow:
        await consent.end_youth_alone(uow, exc_id)
    assert (await _level(runtime, world, world.expert)).level is Disclosure.PSEUDONYMOUS
    async with runtime.sessionmaker() as db:
        row = await db.get(YouthAloneException, exc_id)
        assert row is not None and row.ended_at is not None  # kept, with when it ended


async def test_youth_alone_exception_needs_ground_reason_and_a_recorder(runtime: Runtime) -> None:
    world = await build_world(runtime, consent_to_expert_org=False)
    with pytest.raises(InvalidInput) as bad:
        await _youth_alone(runtime, world, world.registrar, ground="because", reason="kort")
    assert set(bad.value.errors) == {"ground", "reason"}
    with pytest.raises(NotAllowed):
        await _youth_alone(
            runtime, world, world.expert, ground="serious_harm", reason="Ernstig nadeel dreigt."
        )
    async with runtime.sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(YouthAloneException)) == 0


async def test_youth_alone_exception_is_refused_outside_12_to_15(runtime: Runtime) -> None:
    world = await build_world(runtime, consent_to_expert_org=False)
    async with runtime.unit_of_work(staff_principal(world.registrar)) as uow:
        case = await uow.db.get(Case, world.case_id)
        assert case is not None
        cipher = await uow.vault.cipher(uow.db, case.id)
        birth = dt.date.today() - dt.timedelta(days=16 * 366)  # safely 16
        case.birth_date_enc = cipher.encrypt("case.birth_date", birth.isoformat())
    with pytest.raises(InvalidInput) as bad:
        await _youth_alone(
            runtime, world, world.registrar, ground="serious_harm", reason="Ernstig nadeel dreigt."
        )
    assert "ground" in bad.value.errors


async def test_the_family_at_the_table_lets_those_at_the_table_discuss_it_openly(
    runtime: Runtime,
) -> None:
    world = await build_world(runtime, consent_to_expert_org=False)  # no consent at all
    youth, parent, jim = (world.members[r] for r in ("youth", "parent", "jim"))
    assert (await _level(runtime, world, world.expert)).level is Disclosure.PSEUDONYMOUS
    # 14: the youth alone at the table is not enough; the JIM is no stand-in for a parent
    assert (await _level(runtime, world, world.expert, (youth, jim))).reason == "no_consent"
    decision = await _level(runtime, world, world.expert, (youth, parent))
    assert (decision.level, decision.reason) == (Disclosure.FULL, "family_at_table")
    # a member id of another case, or of nobody, counts for nothing
    assert (await _level(runtime, world, world.expert, (youth, 10_000))).level is (
        Disclosure.PSEUDONYMOUS
    )


async def test_an_objection_holds_even_with_the_family_at_the_table(runtime: Runtime) -> None:
    world = await build_world(runtime, consent_to_expert_org=False)
    await _record(runtime, world, "parent", Decision.OBJECTION, world.provider.id)
    present = (world.members["youth"], world.members["parent"])
    decision = await _level(runtime, world, world.expert, present)
    assert (decision.level, decision.reason) == (Disclosure.PSEUDONYMOUS, "objection")


async def _warn(
    rt: Runtime, world: World, user: User, text: str
) -> consent.IdentifyingWarning | None:
    async with rt.unit_of_work(staff_principal(user)) as uow:
        return await consent.identifying_warning(uow, world.case_id, text)


async def test_identifying_warning_names_what_was_found(runtime: Runtime) -> None:
    world = await build_world(runtime, consent_to_expert_org=False)
    text = "Sem Canarie belt, 06-12345678; oom Kees komt ook."
    warning = await _warn(runtime, world, world.registrar, text)
    assert warning is not None
    assert warning.kinds == ("een naam", "een telefoonnummer")
    assert [text[a:b] for a, b in warning.spans] == ["Sem Canarie", "06-12345678", "oom Kees"]
    assert await _warn(runtime, world, world.registrar, "Zorgen over slaap en school.") is None


async def test_identifying_warning_is_no_oracle_for_names_to_a_pseudonymous_author(
    runtime: Runtime,
) -> None:
    world = await build_world(runtime, consent_to_expert_org=False)
    # the expert sees the pseudonym: a warning on "Sem" would confirm who this is
    assert await _warn(runtime, world, world.expert, "Is dit Sem Canarie?") is None
    warning = await _warn(runtime, world, world.expert, "Mail: ma@example.nl")
    assert warning is not None and warning.kinds == ("een e-mailadres",)


async def test_who_may_record_a_consent_may_withdraw_it_and_an_expert_may_not(
    runtime: Runtime,
) -> None:
    world = await build_world(runtime, consent_to_expert_org=False)
    first = await _record(runtime, world, "youth", Decision.CONSENT)
    second = await _record(runtime, world, "parent", Decision.CONSENT)
    with pytest.raises(NotAllowed):
        async with runtime.unit_of_work(staff_principal(world.expert)) as uow:
            await consent.withdraw_consent(uow, first)
    for user, record_id in ((world.coordinator, first), (world.registrar, second)):
        async with runtime.unit_of_work(staff_principal(user)) as uow:
            rec = await consent.withdraw_consent(uow, record_id)
            assert rec.withdrawn_by == f"user:{user.id}"


async def test_a_change_to_a_case_one_may_not_know_of_is_refused_as_if_it_did_not_exist(
    runtime: Runtime,
) -> None:
    """A 403 would confirm the case exists: someone with no part gets what a missing case
    gives (404); an expert at the table, who knows the case, is told no (403)."""
    world = await build_world(runtime, consent_to_expert_org=False)
    record_id = await _record(runtime, world, "youth", Decision.CONSENT)
    other = await make_org(runtime, "Elders")
    stranger = await make_user(runtime, other, "Sam Vreemd")
    for user, refused in ((stranger, NotFound), (world.expert, NotAllowed)):
        with pytest.raises(refused):
            async with runtime.unit_of_work(staff_principal(user)) as uow:
                await consent.withdraw_consent(uow, record_id)
        with pytest.raises(refused):
            await _youth_alone(
                runtime, world, user, ground="serious_harm", reason="Ernstig nadeel dreigt."
            )
        with pytest.raises(refused):
            async with runtime.unit_of_work(staff_principal(user)) as uow:
                case = await uow.db.get(Case, world.case_id)
                assert case is not None
                await consent.record_consent(
                    uow,
                    case,
                    subject_member_id=world.members["parent"],
                    purpose=Purpose.INFORMATION_EXCHANGE,
                    decision=Decision.CONSENT,
                    recipient_org_id=None,
                    recipient_role=None,
                    obtained_how="in_person",
                    explanation="Uitgelegd.",
                    valid_until=None,
                )
