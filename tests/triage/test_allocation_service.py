"""Allocation through the real services on SQLite and PostgreSQL: provider lists as data,
requests when a trigger fired, proposals, decisions, fair turns under concurrency, disputes
and the half-year overview."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections import Counter
from dataclasses import dataclass, replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from keerpunt.platform.audit import verify
from keerpunt.platform.errors import InvalidInput, NotAllowed
from keerpunt.platform.i18n import AMSTERDAM
from keerpunt.platform.models import AuditEntry, User
from keerpunt.platform.principal import Principal, staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.triage import allocation_service as alloc
from keerpunt.triage import service as triage
from keerpunt.triage.allocation import HalfYear, LadderStep, TopOfLadder, TriggerNotDue
from keerpunt.triage.models import Allocation, AllocationRotation
from tests.helpers import make_org, make_user
from tests.triage.factories import YES

pytestmark = pytest.mark.anyio

LOT = alloc.DEFAULT_LOT
TODAY = dt.datetime.now(AMSTERDAM).date()
LONG_AGO = TODAY - dt.timedelta(days=30)

# (name, domain, position, expertise, ages, locations, milieus)
RIJNMOND = [
    ("Enver", "jo", 1, "gezin,trauma", (0, 17), "Rotterdam,Schiedam", ["2", "3"]),
    ("Ihub", "jo", 2, "gezin,trauma", (0, 17), "Rotterdam,Schiedam", ["2", "3"]),
    ("Timon", "jo", 3, "gezin,trauma", (0, 17), "Rotterdam,Schiedam", ["2", "3"]),
    ("Prokino", "jo", 4, "gezin,trauma", (0, 17), "Rotterdam,Schiedam", ["2", "3"]),
    ("Yulius", "ggz", 1, "angst,trauma", (0, 17), "Rotterdam,Dordrecht", ["3"]),
    ("Youz", "ggz", 2, "angst,verslaving", (12, 23), "Rotterdam", ["2", "3"]),
    ("Pameijer", "lvb", 1, "lvb,gezin", (0, 23), "Rotterdam,Schiedam", ["2", "3"]),
]


@dataclass
class Ret:
    manager: User
    coordinator: User
    registrar: User
    providers: dict[str, int]  # name -> organisation id
    case_ids: list[int]

    @property
    def who(self) -> Principal:
        return staff_principal(self.manager)


async def register(rt: Runtime, registrar: User, name: str = "Jay") -> int:
    async with rt.unit_of_work(staff_principal(registrar)) as uow:
        case = await triage.register_case(
            uow,
            triage.Registration(
                answers=YES,
                youth_name=name,
                birth_date=TODAY.replace(year=TODAY.year - 14),
                bsn="",
                situation="",
                parent_names=("Ouder",),
                jim_name="",
                municipality_id=None,
            ),
        )
        return case.id


async def build_ret(rt: Runtime, *, cases: int = 1) -> Ret:
    ret_org = await make_org(rt, "Zorgbemiddeling Rijnmond", kind="other")
    manager = await make_user(rt, ret_org, "Mira Manager", "allocation_manager")
    coordinator = await make_user(rt, ret_org, "Coen Coord", "coordinator")
    wijk = await make_org(rt, "Wijkteam Rotterdam", kind="other")
    registrar = await make_user(rt, wijk, "Ria Registrar", "registrar")
    providers: dict[str, int] = {}
    for name, *_ in RIJNMOND:
        providers[name] = (await make_org(rt, name)).id
    async with rt.unit_of_work(staff_principal(manager)) as uow:
        for name, domain, pos, expertise, ages, locations, milieus in RIJNMOND:
            await alloc.save_provider(
                uow,
                alloc.ProviderDraft(
                    organisation_id=providers[name],
                    lot=LOT,
                    domain=domain,
                    position=str(pos),
                    expertise=expertise,
                    min_age=str(ages[0]),
                    max_age=str(ages[1]),
                    locations=locations,
                    milieus=tuple(milieus),
                    contract_active=True,
                ),
            )
    case_ids = [await register(rt, registrar, f"Jongere {i}") for i in range(cases)]
    return Ret(manager, coordinator, registrar, providers, case_ids)


def draft(**kw: object) -> alloc.RequestDraft:
    base = alloc.RequestDraft(
        lot=LOT,
        trigger="tables_timeout",
        since=LONG_AGO,
        domain="jo",
        age="14",
        location="Rotterdam",
        milieu="3",
        expertise=frozenset({"trauma"}),
        continue_ids=frozenset(),
        not_again_ids=frozenset(),
    )
    return replace(base, **kw)  # type: ignore[arg-type]


async def request(rt: Runtime, ret: Ret, case_id: int, **kw: object) -> int:
    async with rt.unit_of_work(ret.who) as uow:
        req = await alloc.request_allocation(uow, case_id, draft(**kw))
        return req.id


async def accept(rt: Runtime, ret: Ret, request_id: int) -> alloc.ProposalView:
    async with rt.unit_of_work(ret.who) as uow:
        view = await alloc.proposal_view(uow, request_id)
    assert view.explanation.proposed_id is not None
    async with rt.unit_of_work(ret.who) as uow:
        await alloc.decide_allocation(
            uow,
            request_id,
            alloc.Choice(
                provider_id=view.explanation.proposed_id,
                reason="",
                expected_turn=view.explanation.turn_before,
            ),
        )
    return view


# ---- provider lists as data ----


async def test_the_provider_list_is_data_the_manager_keeps(runtime: Runtime) -> None:
    ret = await build_ret(runtime)
    async with runtime.unit_of_work(ret.who) as uow:
        rows = await alloc.provider_list(uow)
    by_name = {r.name: r for r in rows}
    assert [r.name for r in rows if r.domain == "jo"] == ["Enver", "Ihub", "Timon", "Prokino"]
    assert [r.name for r in rows if r.domain == "ggz"] == ["Yulius", "Youz"]
    assert by_name["Youz"].expertise == ("angst", "verslaving")
    assert by_name["Youz"].milieus == (2, 3)
    # the manager edits an offer; a stale edit is refused
    youz = by_name["Youz"]
    async with runtime.unit_of_work(ret.who) as uow:
        await alloc.save_provider(
            uow,
            alloc.ProviderDraft(
                organisation_id=youz.organisation_id,
                lot=LOT,
                domain="ggz",
                position="2",
                expertise="angst, verslaving, eetstoornis",
                min_age="12",
                max_age="23",
                locations="Rotterdam",
                milieus=("3",),
                contract_active=False,
                version=youz.version,
            ),
        )
    async with runtime.unit_of_work(ret.who) as uow:
        youz2 = {r.name: r for r in await alloc.provider_list(uow)}["Youz"]
    assert youz2.expertise == ("angst", "eetstoornis", "verslaving")
    assert youz2.milieus == (3,) and not youz2.contract_active
    with pytest.raises(alloc.StaleVersion):
        async with runtime.unit_of_work(ret.who) as uow:
            await alloc.save_provider(
                uow,
                alloc.ProviderDraft(
                    organisation_id=youz.organisation_id,
                    lot=LOT,
                    domain="ggz",
                    position="2",
                    expertise="x",
                    min_age="0",
                    max_age="17",
                    locations="Rotterdam",
                    milieus=(),
                    contract_active=True,
                    version=youz.version,
                ),
            )


async def test_bad_provider_data_is_refused_with_a_message_per_field(runtime: Runtime) -> None:
    ret = await build_ret(runtime)
    with pytest.raises(InvalidInput) as exc:
        async with runtime.unit_of_work(ret.who) as uow:
            await alloc.save_provider(
                uow,
                alloc.ProviderDraft(
                    organisation_id=ret.providers["Enver"],
                    lot="",
                    domain="xx",
                    position="een",
                    expertise="",
                    min_age="18",
                    max_age="4",
                    locations="",
                    milieus=("5",),
                    contract_active=True,
                ),
            )
    assert set(exc.value.errors) == {"lot", "domain", "position", "max_age", "locations", "milieus"}


async def test_only_the_manager_zorgbemiddeling_changes_the_list(runtime: Runtime) -> None:
    ret = await build_ret(runtime)
    with pytest.raises(NotAllowed):
        async with runtime.unit_of_work(staff_principal(ret.registrar)) as uow:
            await alloc.save_provider(
                uow,
                alloc.ProviderDraft(
                    organisation_id=ret.providers["Enver"],
                    lot=LOT,
                    domain="jo",
                    position="1",
                    expertise="",
                    min_age="0",
                    max_age="17",
                    locations="Rotterdam",
                    milieus=(),
                    contract_active=True,
                ),
            )


# ---- requests: the trigger fired ----


async def test_a_request_before_the_trigger_fired_is_refused(runtime: Runtime) -> None:
    ret = await build_ret(runtime)
    with pytest.raises(TriggerNotDue):
        await request(runtime, ret, ret.case_ids[0], since=TODAY - dt.timedelta(days=10))
    with pytest.raises(InvalidInput) as exc:
        await request(runtime, ret, ret.case_ids[0], age="twaalf", domain="", since=None)
    assert set(exc.value.errors) == {"age", "domain", "since"}
    rid = await request(
        runtime, ret, ret.case_ids[0], trigger="crisis_28_days", since=TODAY - dt.timedelta(28)
    )
    with pytest.raises(InvalidInput) as exc:  # one open request per case
        await request(runtime, ret, ret.case_ids[0])
    assert "case" in exc.value.errors
    async with runtime.unit_of_work(ret.who) as uow:
        view = await alloc.proposal_view(uow, rid)
    assert view.trigger == "crisis_28_days" and view.pseudonym.startswith("K-")


async def test_the_lifecycle_can_request_as_the_system(runtime: Runtime) -> None:
    from keerpunt.platform.principal import SYSTEM

    ret = await build_ret(runtime)
    async with runtime.unit_of_work(SYSTEM) as uow:
        req = await alloc.request_allocation(uow, ret.case_ids[0], draft())
    assert req.requested_by_id is None
    with pytest.raises(NotAllowed):
        async with runtime.unit_of_work(staff_principal(ret.registrar)) as uow:
            await alloc.request_allocation(uow, ret.case_ids[0], draft())


# ---- proposal and decision ----


async def test_proposal_explains_each_candidate_and_the_turn(runtime: Runtime) -> None:
    ret = await build_ret(runtime)
    rid = await request(runtime, ret, ret.case_ids[0])
    async with runtime.unit_of_work(ret.who) as uow:
        view = await alloc.proposal_view(uow, rid)
    e = view.explanation
    assert e.proposed == "Enver" and e.basis == "turn"
    assert (e.turn_before, e.turn_after, e.next_before, e.next_after) == (0, 1, "Enver", "Ihub")
    assert [c.name for c in e.candidates][:4] == ["Enver", "Ihub", "Timon", "Prokino"]
    youz = next(c for c in e.candidates if c.name == "Youz")
    assert not youz.suitable
    assert {c.factor for c in youz.checks if not c.ok} == {"domain", "expertise"}


async def test_accepting_gives_the_turn_and_is_audited(runtime: Runtime) -> None:
    ret = await build_ret(runtime, cases=2)
    rid = await request(runtime, ret, ret.case_ids[0])
    await accept(runtime, ret, rid)
    rid2 = await request(runtime, ret, ret.case_ids[1])
    async with runtime.unit_of_work(ret.who) as uow:
        view = await alloc.proposal_view(uow, rid2)
    assert view.explanation.proposed == "Ihub" and view.explanation.turn_before == 1
    async with runtime.sessionmaker() as db:
        row = await db.scalar(select(Allocation))
        assert row is not None and row.turn == 1 and not row.overridden
        assert row.provider_id == ret.providers["Enver"]
        actions = (await db.scalars(select(AuditEntry.action))).all()
        assert "allocation.requested" in actions and "allocation.decided" in actions
        assert await verify(db) == []
    async with runtime.unit_of_work(ret.who) as uow:
        shown = await alloc.allocation_view(uow, row.id)
    assert shown.provider == "Enver" and shown.turn == 1 and shown.reason is None
    assert shown.explanation.next_after == "Ihub"


async def test_override_needs_a_reason_and_keeps_the_passed_over_provider_first(
    runtime: Runtime,
) -> None:
    ret = await build_ret(runtime, cases=2)
    rid = await request(runtime, ret, ret.case_ids[0])
    timon = ret.providers["Timon"]
    with pytest.raises(InvalidInput) as exc:
        async with runtime.unit_of_work(ret.who) as uow:
            await alloc.decide_allocation(uow, rid, alloc.Choice(timon, " ", 0))
    assert "reason" in exc.value.errors
    async with runtime.unit_of_work(ret.who) as uow:
        a = await alloc.decide_allocation(
            uow, rid, alloc.Choice(timon, "Timon heeft nu plek in milieu 3.", 0)
        )
        aid = a.id
    async with runtime.unit_of_work(ret.who) as uow:
        shown = await alloc.allocation_view(uow, aid)
    assert shown.overridden and shown.proposed == "Enver" and shown.provider == "Timon"
    assert shown.reason == "Timon heeft nu plek in milieu 3."
    async with runtime.sessionmaker() as db:
        raw = await db.scalar(select(Allocation.reason_enc))
        assert raw is not None and b"milieu" not in raw  # encrypted at rest
    rid2 = await request(runtime, ret, ret.case_ids[1])
    async with runtime.unit_of_work(ret.who) as uow:
        view = await alloc.proposal_view(uow, rid2)
    assert view.explanation.proposed == "Enver"  # kept its place
    assert view.explanation.turn_before == 1


async def test_a_stale_turn_is_refused_and_nothing_is_written(runtime: Runtime) -> None:
    ret = await build_ret(runtime, cases=2)
    r1 = await request(runtime, ret, ret.case_ids[0])
    r2 = await request(runtime, ret, ret.case_ids[1])
    async with runtime.unit_of_work(ret.who) as uow:
        seen = await alloc.proposal_view(uow, r2)  # shows Enver, turn 0
    await accept(runtime, ret, r1)  # meanwhile someone else took turn 1
    with pytest.raises(alloc.TurnMoved):
        async with runtime.unit_of_work(ret.who) as uow:
            await alloc.decide_allocation(
                uow,
                r2,
                alloc.Choice(seen.explanation.proposed_id or 0, "", seen.explanation.turn_before),
            )
    async with runtime.sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(Allocation)) == 1


async def test_two_providers_with_a_binding_split(runtime: Runtime) -> None:
    ret = await build_ret(runtime)
    rid = await request(runtime, ret, ret.case_ids[0])
    enver, yulius = ret.providers["Enver"], ret.providers["Yulius"]
    with pytest.raises(InvalidInput) as exc:
        async with runtime.unit_of_work(ret.who) as uow:
            await alloc.decide_allocation(uow, rid, alloc.Choice(enver, "", 0, enver, "50"))
    assert "second_provider_id" in exc.value.errors
    with pytest.raises(InvalidInput) as exc:
        async with runtime.unit_of_work(ret.who) as uow:
            await alloc.decide_allocation(uow, rid, alloc.Choice(enver, "", 0, yulius, "100"))
    assert "share_percent" in exc.value.errors
    async with runtime.unit_of_work(ret.who) as uow:
        a = await alloc.decide_allocation(uow, rid, alloc.Choice(enver, "", 0, yulius, "70"))
        aid = a.id
    async with runtime.unit_of_work(ret.who) as uow:
        shown = await alloc.allocation_view(uow, aid)
    assert (shown.provider, shown.share_percent) == ("Enver", 70)
    assert (shown.second_provider, shown.second_share_percent) == ("Yulius", 30)


# ---- fair under concurrency, on the real databases ----


@pytest.mark.parametrize("workers", [24])
async def test_concurrent_allocations_never_give_a_turn_twice(
    runtime: Runtime, workers: int
) -> None:
    ret = await build_ret(runtime, cases=workers)
    request_ids = [await request(runtime, ret, cid) for cid in ret.case_ids]
    stale = Counter[str]()

    async def allocate(rid: int) -> None:
        while True:  # what a person does on "the turn moved": look again, accept again
            try:
                await accept(runtime, ret, rid)
                return
            except alloc.TurnMoved:
                stale["n"] += 1
                await asyncio.sleep(0)

    await asyncio.gather(*(allocate(rid) for rid in request_ids))
    async with runtime.sessionmaker() as db:
        rows = (await db.execute(select(Allocation.turn, Allocation.provider_id))).all()
        rotation = await db.scalar(select(AllocationRotation))
    turns = sorted(t for t, _ in rows)
    assert turns == list(range(1, workers + 1))  # never skipped, never repeated
    assert rotation is not None and rotation.turn == workers
    counts = Counter(p for _, p in rows)
    jo = [ret.providers[n] for n in ("Enver", "Ihub", "Timon", "Prokino")]
    assert sorted(counts[p] for p in jo) == [workers // 4] * 4  # fair share
    assert stale["n"] > 0 or runtime.engine.dialect.name == "sqlite"


# ---- disputes ----


async def test_a_dispute_climbs_the_ladder_while_the_allocation_stands(runtime: Runtime) -> None:
    ret = await build_ret(runtime)
    rid = await request(runtime, ret, ret.case_ids[0])
    await accept(runtime, ret, rid)
    async with runtime.sessionmaker() as db:
        aid = await db.scalar(select(Allocation.id))
    assert aid is not None
    with pytest.raises(InvalidInput) as exc:
        async with runtime.unit_of_work(ret.who) as uow:
            await alloc.open_dispute(uow, aid, ret.providers["Enver"], "", "")
    assert "note" in exc.value.errors
    async with runtime.unit_of_work(ret.who) as uow:
        d = await alloc.open_dispute(
            uow, aid, ret.providers["Enver"], "Piet (manager Enver)", "Geen plek in milieu 3."
        )
        did = d.id
    for _ in range(3):
        async with runtime.unit_of_work(ret.who) as uow:
            await alloc.escalate_dispute(uow, did, "Contractmanager GRJR", "Geen overeenstemming.")
    with pytest.raises(TopOfLadder):
        async with runtime.unit_of_work(ret.who) as uow:
            await alloc.escalate_dispute(uow, did, "", "Nog steeds niet.")
    async with runtime.unit_of_work(ret.who) as uow:
        await alloc.resolve_dispute(uow, did, "Directies", "Enver pakt de casus op.")
    async with runtime.unit_of_work(ret.who) as uow:
        shown = await alloc.allocation_view(uow, aid)
    assert shown.provider == "Enver"  # the allocation stood throughout
    (dispute,) = shown.disputes
    assert dispute.status == "resolved" and dispute.level == LadderStep.BOARDS
    assert [s.action for s in dispute.steps] == [
        "opened",
        "escalated",
        "escalated",
        "escalated",
        "resolved",
    ]
    assert dispute.steps[0].by == "Mira Manager" and dispute.steps[0].note == (
        "Geen plek in milieu 3."
    )
    with pytest.raises(InvalidInput):
        async with runtime.unit_of_work(ret.who) as uow:
            await alloc.escalate_dispute(uow, did, "", "Weer open?")


# ---- the six-monthly overview ----


async def test_overview_counts_allocations_per_provider_per_half_year(runtime: Runtime) -> None:
    ret = await build_ret(runtime, cases=3)
    for cid in ret.case_ids:
        await accept(runtime, ret, await request(runtime, ret, cid))
    async with runtime.sessionmaker() as db, db.begin():
        first = await db.scalar(select(Allocation).order_by(Allocation.turn))
        assert first is not None
        first.decided_at = dt.datetime(2020, 3, 1, 12, tzinfo=dt.UTC)
    async with runtime.unit_of_work(ret.who) as uow:
        now = await alloc.overview(uow, HalfYear.of(TODAY))
        then = await alloc.overview(uow, HalfYear(2020, 1))
    counts = {r.name: r.allocated for r in now.rows}
    assert counts["Enver"] == 0 and counts["Ihub"] == 1 and counts["Timon"] == 1
    assert counts["Pameijer"] == 0 and now.total == 2
    assert {r.name: r.allocated for r in then.rows}["Enver"] == 1
    async with runtime.unit_of_work(staff_principal(ret.coordinator)) as uow:
        assert (await alloc.overview(uow, HalfYear(2020, 1))).total == 1
    with pytest.raises(NotAllowed):
        async with runtime.unit_of_work(staff_principal(ret.registrar)) as uow:
            await alloc.overview(uow, HalfYear(2020, 1))


async def test_the_same_request_decided_twice_at_once_allocates_once(runtime: Runtime) -> None:
    ret = await build_ret(runtime)
    rid = await request(runtime, ret, ret.case_ids[0])
    enver = ret.providers["Enver"]

    async def click() -> str:
        try:
            async with runtime.unit_of_work(ret.who) as uow:
                await alloc.decide_allocation(uow, rid, alloc.Choice(enver, "", 0))
            return "ok"
        except (InvalidInput, alloc.TurnMoved):
            return "refused"

    outcomes = await asyncio.gather(click(), click(), click())
    assert sorted(outcomes) == ["ok", "refused", "refused"]
    async with runtime.sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(Allocation)) == 1


_lots = itertools.count()


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    workers=st.integers(min_value=2, max_value=9),
    overrides=st.lists(st.sampled_from([None, "Enver", "Ihub", "Timon", "Prokino"]), max_size=9),
)
async def test_property_concurrent_turns_never_skip_or_repeat(
    runtime: Runtime, workers: int, overrides: list[str | None]
) -> None:
    """Hypothesis picks how many allocations run at once and which of them override the
    proposal; on the real database every turn is given exactly once, in order, and without
    overrides the J&O providers' counts differ by at most one."""
    ret = await _shared_ret(runtime)
    lot = f"Perceel {next(_lots)}"
    async with runtime.unit_of_work(ret.who) as uow:
        for name, domain, pos, expertise, ages, locations, milieus in RIJNMOND[:4]:
            await alloc.save_provider(
                uow,
                alloc.ProviderDraft(
                    organisation_id=ret.providers[name],
                    lot=lot,
                    domain=domain,
                    position=str(pos),
                    expertise=expertise,
                    min_age=str(ages[0]),
                    max_age=str(ages[1]),
                    locations=locations,
                    milieus=tuple(milieus),
                    contract_active=True,
                ),
            )
    case_ids = [await register(runtime, ret.registrar) for _ in range(workers)]
    rids = [await request(runtime, ret, cid, lot=lot) for cid in case_ids]
    plan = (overrides + [None] * workers)[:workers]

    async def allocate(rid: int, target: str | None) -> None:
        while True:
            async with runtime.unit_of_work(ret.who) as uow:
                view = await alloc.proposal_view(uow, rid)
            e = view.explanation
            assert e.proposed_id is not None
            chosen = ret.providers[target] if target else e.proposed_id
            reason = "Andere keuze." if chosen != e.proposed_id else ""
            try:
                async with runtime.unit_of_work(ret.who) as uow:
                    await alloc.decide_allocation(
                        uow, rid, alloc.Choice(chosen, reason, e.turn_before)
                    )
                return
            except alloc.TurnMoved:
                await asyncio.sleep(0)

    await asyncio.gather(*(allocate(rid, t) for rid, t in zip(rids, plan, strict=True)))
    async with runtime.sessionmaker() as db:
        rows = (
            await db.execute(
                select(Allocation.turn, Allocation.provider_id).where(Allocation.lot == lot)
            )
        ).all()
    assert sorted(t for t, _ in rows) == list(range(1, workers + 1))
    if not any(plan):
        counts = Counter(p for _, p in rows)
        jo = [counts[ret.providers[n]] for n in ("Enver", "Ihub", "Timon", "Prokino")]
        assert max(jo) - min(jo) <= 1


_shared: list[Ret] = []


async def _shared_ret(rt: Runtime) -> Ret:
    """One set of organisations and people for all examples of a hypothesis test (they run in
    one test, on one database); built again once the database was emptied."""
    if _shared:
        async with rt.sessionmaker() as db:
            if await db.get(User, _shared[0].manager.id) is not None:
                return _shared[0]
    _shared[:] = [await build_ret(rt, cases=0)]
    return _shared[0]


async def test_the_lifecycle_reports_a_trigger_and_the_manager_fills_in_the_needs(
    runtime: Runtime,
) -> None:
    from keerpunt.platform.principal import SYSTEM
    from keerpunt.triage.allocation import Domain, TriggerKind

    ret = await build_ret(runtime)
    cid = ret.case_ids[0]
    with pytest.raises(TriggerNotDue):
        async with runtime.unit_of_work(SYSTEM) as uow:
            await alloc.trigger_fired(
                uow, cid, TriggerKind.CRISIS_28_DAYS, TODAY - dt.timedelta(days=27), Domain.GGZ
            )
    async with runtime.unit_of_work(SYSTEM) as uow:
        req = await alloc.trigger_fired(
            uow, cid, TriggerKind.CRISIS_28_DAYS, TODAY - dt.timedelta(days=28), Domain.GGZ
        )
        rid = req.id
    async with runtime.unit_of_work(ret.who) as uow:
        (line,) = (await alloc.worklist(uow)).open_requests
        assert line.request_id == rid and not line.complete
        with pytest.raises(alloc.NeedsIncomplete):
            await alloc.proposal_view(uow, rid)
        name, values = await alloc.request_draft(uow, rid)
    assert values["domain"] == "ggz" and values["trigger"] == "crisis_28_days"
    assert values["age"] == "" and name.startswith("K-")
    with pytest.raises(alloc.NeedsIncomplete):
        async with runtime.unit_of_work(ret.who) as uow:
            await alloc.decide_allocation(uow, rid, alloc.Choice(ret.providers["Yulius"], "", 0))
    with pytest.raises(InvalidInput) as exc:
        async with runtime.unit_of_work(ret.who) as uow:
            await alloc.complete_request(uow, rid, draft(domain="ggz", age="", location=""))
    assert set(exc.value.errors) == {"age", "location"}
    async with runtime.unit_of_work(ret.who) as uow:
        await alloc.complete_request(
            uow,
            rid,
            draft(
                domain="ggz",
                trigger="crisis_28_days",
                since=TODAY - dt.timedelta(days=28),
                expertise=frozenset({"angst"}),
            ),
        )
    async with runtime.unit_of_work(ret.who) as uow:
        view = await alloc.proposal_view(uow, rid)
    assert view.explanation.proposed == "Yulius"  # both GGZ providers fit: Yulius is first
    assert view.explanation.basis == "turn"


async def test_when_nobody_fits_the_manager_chooses_with_a_reason_and_a_turn_is_given(
    runtime: Runtime,
) -> None:
    ret = await build_ret(runtime)
    rid = await request(runtime, ret, ret.case_ids[0], location="Vlaardingen")
    async with runtime.unit_of_work(ret.who) as uow:
        view = await alloc.proposal_view(uow, rid)
    assert view.explanation.proposed is None and view.explanation.basis == "none_suitable"
    assert all(not c.suitable for c in view.explanation.candidates)
    with pytest.raises(InvalidInput):
        async with runtime.unit_of_work(ret.who) as uow:
            await alloc.decide_allocation(uow, rid, alloc.Choice(ret.providers["Ihub"], "", 0))
    async with runtime.unit_of_work(ret.who) as uow:
        a = await alloc.decide_allocation(
            uow, rid, alloc.Choice(ret.providers["Ihub"], "Ihub opent daar een locatie.", 0)
        )
        aid = a.id
    async with runtime.unit_of_work(ret.who) as uow:
        shown = await alloc.allocation_view(uow, aid)
    assert shown.overridden and shown.proposed is None and shown.turn == 1
    assert shown.explanation.turn_after == 1 and shown.explanation.next_after == "Enver"


async def test_accepting_a_proposal_that_changed_meanwhile_is_refused(runtime: Runtime) -> None:
    ret = await build_ret(runtime)
    rid = await request(runtime, ret, ret.case_ids[0])
    async with runtime.unit_of_work(ret.who) as uow:
        seen = (await alloc.proposal_view(uow, rid)).explanation
        enver = next(r for r in await alloc.provider_list(uow) if r.name == "Enver")
    assert seen.proposed == "Enver"
    async with runtime.unit_of_work(ret.who) as uow:  # Enver's contract ends meanwhile
        await alloc.save_provider(
            uow,
            alloc.ProviderDraft(
                organisation_id=enver.organisation_id,
                lot=LOT,
                domain="jo",
                position="1",
                expertise="gezin,trauma",
                min_age="0",
                max_age="17",
                locations="Rotterdam,Schiedam",
                milieus=("2", "3"),
                contract_active=False,
                version=enver.version,
            ),
        )
    with pytest.raises(alloc.ProposalChanged):
        async with runtime.unit_of_work(ret.who) as uow:
            await alloc.decide_allocation(
                uow,
                rid,
                alloc.Choice(
                    ret.providers["Enver"], "", seen.turn_before, seen_proposal_id=seen.proposed_id
                ),
            )
    async with runtime.unit_of_work(ret.who) as uow:
        assert (await alloc.proposal_view(uow, rid)).explanation.proposed == "Ihub"
