"""Demo data (``keerpunt demo load``): the IJsselland GiZ pilot of seed 003 and the Rijnmond
providers of seed 000, a triage team with each discipline, and two cases: one with consent,
one without (discussed under its pseudonym). AGB codes are made up; CBS codes are real.

Loading twice changes nothing: the second run sees the data and stops.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from keerpunt.platform.i18n import AMSTERDAM
from keerpunt.platform.models import Organisation, OrgKind, User
from keerpunt.platform.principal import staff_principal
from keerpunt.platform.runtime import Runtime

IJSSELLAND = [
    "Accare",
    "Ambiq",
    "Dimence Jeugd GGZ",
    "Karakter",
    "Pactum",
    "Pluryn",
    "Tactus",
    "Trias Jeugdhulp",
    "Triade Vitree",
]
RIJNMOND = ["Enver", "Ihub", "Timon", "Prokino", "Yulius", "Youz", "Pameijer"]
PENVOERDER = "Pactum"

TEAM = [  # (name, organisation, discipline)
    ("Ruud Regie", "Karakter", "regiebehandelaar"),
    ("Sanne Systeem", "Accare", "systeembehandelaar"),
    ("Gerrit Gezin", "Trias Jeugdhulp", "gezinsbehandelaar"),
    ("Wendy Wetenschap", "Dimence Jeugd GGZ", "gedragswetenschapper"),
    ("Eva Ervaring", "Tactus", "ervaringsdeskundige"),
    ("Olaf Onderwijs", "Ambiq", "onderwijsconsulent"),
    ("Sofie Schulden", "Pluryn", "sociaal_domein"),
]


async def load(rt: Runtime) -> bool:
    """Load the demo data; returns False if it was there already."""
    from keerpunt.consent import service as consent
    from keerpunt.consent.service import Decision, Purpose
    from keerpunt.platform.models import Case, CaseMember
    from keerpunt.settlement import monitor_demo
    from keerpunt.settlement import service as settlement
    from keerpunt.triage import service as triage

    async with rt.sessionmaker() as db, db.begin():
        if await db.scalar(select(Organisation.id).where(Organisation.name == PENVOERDER)):
            return False
        orgs: dict[str, Organisation] = {}
        for i, name in enumerate(IJSSELLAND + RIJNMOND):
            orgs[name] = Organisation(
                name=name,
                kind=OrgKind.PROVIDER,
                agb_code=f"9800{i + 1:04d}",
                is_penvoerder=name == PENVOERDER,
                region="IJsselland" if name in IJSSELLAND else "Rijnmond",
            )
        orgs["Deventer"] = Organisation(
            name="Gemeente Deventer",
            kind=OrgKind.MUNICIPALITY,
            cbs_code="0150",
            region="IJsselland",
        )
        orgs["Zwolle"] = Organisation(
            name="Gemeente Zwolle", kind=OrgKind.MUNICIPALITY, cbs_code="0193", region="IJsselland"
        )
        orgs["Wijkteam"] = Organisation(
            name="Sociaal Wijkteam Deventer", kind=OrgKind.OTHER, region="IJsselland"
        )
        db.add_all(orgs.values())
        await db.flush()

        def user(name: str, org: str, roles: str, discipline: str | None = None) -> User:
            first = name.split()[0].lower()
            u = User(
                organisation_id=orgs[org].id,
                display_name=name,
                email=f"{first}@{org.lower().replace(' ', '-')}.demo.keerpunt.nl",
                roles=roles,
                discipline=discipline,
            )
            db.add(u)
            return u

        team = [user(n, o, "triage_member", d) for n, o, d in TEAM]
        coordinator = user("Carla Coördinator", PENVOERDER, "coordinator")
        registrar = user("Wim Wijkteam", "Wijkteam", "registrar")
        finance = user("Fatima Financiën", PENVOERDER, "finance")
        await db.flush()
        finance_p = staff_principal(finance)
        provider_ids = [orgs[name].id for name in IJSSELLAND]
        team_ids = [u.id for u in team]
        reg_p = staff_principal(registrar)
        coord_p = staff_principal(coordinator)
        deventer_id = orgs["Deventer"].id

    yes = {key: True for key, _q, _w in triage.ENTRY_QUESTIONS}
    today = dt.datetime.now(AMSTERDAM).date()
    async with rt.unit_of_work(reg_p) as uow:
        with_consent = await triage.register_case(
            uow,
            triage.Registration(
                answers=yes,
                youth_name="Sem de Vries",
                birth_date=today.replace(year=today.year - 14),
                bsn="111222333",
                situation="Sem gaat niet meer naar school; thuis is veel ruzie.",
                parent_names=("Marieke de Vries", "Johan de Vries"),
                jim_name="Oom Kees",
                municipality_id=deventer_id,
                domain="jo",
                anonymous_summary="Jongere van 14, al maanden niet op school; spanning thuis.",
            ),
        )
        without = await triage.register_case(
            uow,
            triage.Registration(
                answers=yes,
                youth_name="Noor Bakker",
                birth_date=today.replace(year=today.year - 9),
                bsn="",
                situation="Noor is veel angstig en eet slecht.",
                parent_names=("Linda Bakker", ""),
                jim_name="",
                municipality_id=deventer_id,
                domain="ggz",
                anonymous_summary="Kind van 9 met veel angst; eet slecht, ouder zoekt steun.",
            ),
        )
        members = (
            await uow.db.scalars(select(CaseMember).where(CaseMember.case_id == with_consent.id))
        ).all()
        for m in members:
            if m.role in {"youth", "parent"}:
                await consent.record_consent(
                    uow,
                    with_consent,
                    subject_member_id=m.id,
                    purpose=Purpose.INFORMATION_EXCHANGE,
                    decision=Decision.CONSENT,
                    recipient_org_id=None,
                    recipient_role=None,  # everyone at the table for this case
                    obtained_how="in_person",
                    explanation="Uitgelegd dat het triageteam de gegevens gebruikt om samen "
                    "met het gezin een plan te maken.",
                    valid_until=None,
                )
        case_ids = (with_consent.id, without.id)
        assert isinstance(with_consent, Case)
    # Contract tariffs of the IJsselland providers, per hour (unit 04), from 1 January.
    async with rt.unit_of_work(finance_p) as uow:
        for i, provider_id in enumerate(provider_ids):
            await settlement.add_contract(
                uow,
                settlement.ContractDraft(
                    provider_id=provider_id,
                    product_category="45",
                    product_code="45A52",
                    description="Specialistische jeugdhulp, ambulant",
                    unit="04",
                    tariff_cents=11_500 + 250 * i,
                    valid_from=dt.date(today.year, 1, 1),
                    valid_to=None,
                ),
            )
    start = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(9, 30), AMSTERDAM)
    async with rt.unit_of_work(coord_p) as uow:
        for case_id in case_ids:
            await triage.plan_session(uow, case_id, start.astimezone(dt.UTC), team_ids[:4])
        # A meeting held last month for Sem: its arrangement is fixed, so the penvoerder's
        # quarter view has something to show.
        held = dt.datetime.combine(today - dt.timedelta(days=30), dt.time(9, 30), AMSTERDAM)
        past = await triage.plan_session(uow, case_ids[0], held.astimezone(dt.UTC), team_ids[:4])
        await triage.add_factor(
            uow, past.id, "school", "perpetuating", "Sem gaat al maanden niet naar school."
        )
        await triage.add_goal(uow, past.id, "Ik wil weer naar school, eerst twee ochtenden.")
        for provider_id, hours in ((provider_ids[3], "3"), (provider_ids[7], "2,5")):
            await triage.add_line(
                uow, past.id, provider_id, "45A52", "ambulant", hours, held.date()
            )
        await triage.close_session(uow, past.id)
    from keerpunt.settlement import kassier_demo

    await kassier_demo.load(rt, case_ids[0], deventer_id)
    await load_allocation(rt, case_ids)
    await monitor_demo.load(rt)
    return True


async def who_is_who(rt: Runtime) -> list[str]:
    """One line per demo person: how to log in as them."""
    from keerpunt.platform.models import CaseMember

    lines = []
    async with rt.sessionmaker() as db:
        users = (await db.scalars(select(User).order_by(User.id))).all()
        for u in users:
            what = u.discipline or u.roles
            lines.append(f"  {u.display_name:<22} {u.organisation.name:<26} {what}")
        members = (await db.scalars(select(CaseMember).where(CaseMember.user_id.is_(None)))).all()
        for m in members:
            cipher = await rt.vault.cipher(db, m.case_id)
            name = cipher.decrypt("member.name", m.name_enc) or "?"
            lines.append(f"  {name:<22} {'family, case ' + str(m.case_id):<26} {m.role}")
    return lines


# -- RET Rijnmond allocation (seed 000) ---------------------------------------------------------
# The offers below are illustrative, not the providers' real ones; the domains and the order
# of turns follow seed 000.

RIJNMOND_OFFERS = [  # (name, domain, place in the rotation, expertise, ages, places, milieus)
    ("Enver", "jo", 1, "gezin, opvoeding, trauma, zwerfjongeren", (12, 23),
     "Rotterdam, Schiedam, Vlaardingen, Capelle aan den IJssel", ("2", "3")),
    ("Ihub", "jo", 2, "gezin, opvoeding, trauma, veiligheid", (0, 17),
     "Rotterdam, Capelle aan den IJssel, Ridderkerk, Barendrecht", ("2", "3")),
    ("Timon", "jo", 3, "gezin, jonge moeders, opvoeding", (12, 23),
     "Rotterdam, Spijkenisse", ("2",)),
    ("Prokino", "jo", 4, "gezin, opvoeding, trauma", (4, 17),
     "Rotterdam, Schiedam, Maassluis, Spijkenisse", ("2", "3")),
    ("Yulius", "ggz", 1, "angst, autisme, eetstoornis, trauma", (0, 17),
     "Rotterdam, Dordrecht, Barendrecht", ("3",)),
    ("Youz", "ggz", 2, "angst, psychose, trauma, verslaving", (12, 23),
     "Rotterdam, Capelle aan den IJssel", ("2", "3")),
    ("Pameijer", "lvb", 1, "autisme, gezin, lvb", (0, 23),
     "Rotterdam, Schiedam, Vlaardingen, Spijkenisse", ("2", "3")),
]  # fmt: skip


async def load_allocation(rt: Runtime, case_ids: tuple[int, int]) -> None:
    """The manager zorgbemiddeling of Rijnmond, the providers' offers per domain, one case
    allocated by turn and one waiting for allocation."""
    from keerpunt.triage import allocation_service as alloc

    async with rt.sessionmaker() as db, db.begin():
        ret = Organisation(name="Zorgbemiddeling Rijnmond", kind=OrgKind.OTHER, region="Rijnmond")
        db.add(ret)
        await db.flush()
        manager = User(
            organisation_id=ret.id,
            display_name="Mira Manager",
            email="mira@zorgbemiddeling-rijnmond.demo.keerpunt.nl",
            roles="allocation_manager",
        )
        db.add(manager)
        await db.flush()
        ids = {
            o.name: o.id
            for o in await db.scalars(select(Organisation).where(Organisation.name.in_(RIJNMOND)))
        }
        who = staff_principal(manager)
    today = dt.datetime.now(AMSTERDAM).date()
    async with rt.unit_of_work(who) as uow:
        for name, domain, place, expertise, ages, places, milieus in RIJNMOND_OFFERS:
            await alloc.save_provider(
                uow,
                alloc.ProviderDraft(
                    organisation_id=ids[name],
                    lot=alloc.DEFAULT_LOT,
                    domain=domain,
                    position=str(place),
                    expertise=expertise,
                    min_age=str(ages[0]),
                    max_age=str(ages[1]),
                    locations=places,
                    milieus=milieus,
                    contract_active=True,
                ),
            )
        done = await alloc.request_allocation(
            uow,
            case_ids[0],
            alloc.RequestDraft(
                lot=alloc.DEFAULT_LOT,
                trigger="tables_timeout",
                since=today - dt.timedelta(days=25),
                domain="jo",
                age="14",
                location="Rotterdam",
                milieu="2",
                expertise=frozenset({"gezin"}),
                continue_ids=frozenset(),
                not_again_ids=frozenset(),
            ),
        )
        await alloc.request_allocation(
            uow,
            case_ids[1],
            alloc.RequestDraft(
                lot=alloc.DEFAULT_LOT,
                trigger="crisis_28_days",
                since=today - dt.timedelta(days=30),
                domain="ggz",
                age="9",
                location="Rotterdam",
                milieu="3",
                expertise=frozenset({"angst"}),
                continue_ids=frozenset(),
                not_again_ids=frozenset(),
            ),
        )
    async with rt.unit_of_work(who) as uow:
        proposal = await alloc.proposal_view(uow, done.id)
        assert proposal.explanation.proposed_id is not None
        await alloc.decide_allocation(
            uow,
            done.id,
            alloc.Choice(proposal.explanation.proposed_id, "", proposal.explanation.turn_before),
        )
