"""Demo data for the funder's monitor: a funder at the municipality and a filled previous
quarter — eight youths with closed meetings, arrangements of several forms of help, and the
chair's confirmed hours — through the real services, so ``make run`` shows a filled monitor."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from keerpunt.platform.i18n import AMSTERDAM
from keerpunt.platform.models import Organisation, User
from keerpunt.platform.principal import staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.settlement.rules import quarter_of
from keerpunt.settlement.triage_rates import load_pilot_values

# (first name, age, domain, [(provider, help form, hours or units a week, unit)])
_YOUTHS: list[tuple[str, int, str, list[tuple[str, str, str, str]]]] = [
    ("Daan", 15, "jo", [("Trias Jeugdhulp", "ambulant", "3", "hour")]),
    ("Lotte", 13, "ggz", [("Accare", "ambulant", "2", "hour")]),
    (
        "Milan",
        16,
        "jo",
        [("Pluryn", "short_stay", "2", "etmaal"), ("Karakter", "ambulant", "1,5", "hour")],
    ),
    ("Fenna", 12, "ggz", [("Dimence Jeugd GGZ", "intensive_ambulant", "4", "hour")]),
    ("Joris", 14, "lvb", [("Triade Vitree", "day_treatment", "3", "dagdeel")]),
    ("Isa", 11, "jo", [("Trias Jeugdhulp", "ambulant", "2,5", "hour")]),
    ("Bram", 17, "jo", [("Ambiq", "foster_care", "7", "etmaal")]),
    ("Yara", 10, "ggz", [("Karakter", "ambulant", "2", "hour")]),
]


async def load(rt: Runtime) -> None:
    """Called once from :func:`keerpunt.platform.demo.load`, after the rest of the demo."""
    from keerpunt.triage import service as triage

    async with rt.sessionmaker() as db, db.begin():
        orgs = {o.name: o for o in await db.scalars(select(Organisation))}
        users = list(await db.scalars(select(User).order_by(User.id)))
        db.add(
            User(
                organisation_id=orgs["Gemeente Deventer"].id,
                display_name="Gert Gemeente",
                email="gert@gemeente-deventer.demo.keerpunt.nl",
                roles="funder",
            )
        )
        # a database made by the migrations has them already; one made from the models not
        penvoerder = next(o for o in orgs.values() if o.is_penvoerder)
        await load_pilot_values(db, penvoerder.region or "")
    registrar = next(u for u in users if "registrar" in u.role_set)
    coordinator = next(u for u in users if "coordinator" in u.role_set)
    team = [u.id for u in users if "triage_member" in u.role_set]
    today = dt.datetime.now(AMSTERDAM).date()
    quarter = quarter_of(today).previous
    if quarter.year < today.year:  # in January-March: last year's tariffs too
        from keerpunt.settlement import service as settlement

        finance = next(u for u in users if "finance" in u.role_set)
        async with rt.unit_of_work(staff_principal(finance)) as uow:
            for i, name in enumerate(
                sorted(
                    n for n, o in orgs.items() if o.region == "IJsselland" and o.kind == "provider"
                )
            ):
                await settlement.add_contract(
                    uow,
                    settlement.ContractDraft(
                        provider_id=orgs[name].id,
                        product_category="45",
                        product_code="45A52",
                        description="Specialistische jeugdhulp, ambulant",
                        unit="04",
                        tariff_cents=11_000 + 250 * i,
                        valid_from=dt.date(quarter.year, 1, 1),
                        valid_to=dt.date(quarter.year, 12, 31),
                    ),
                )
    yes = {key: True for key, _q, _w in triage.ENTRY_QUESTIONS}
    for i, (name, age, domain, lines) in enumerate(_YOUTHS):
        held_day = quarter.start + dt.timedelta(days=5 + 10 * i)
        held = dt.datetime.combine(held_day, dt.time(9, 30), AMSTERDAM).astimezone(dt.UTC)
        async with rt.unit_of_work(staff_principal(registrar)) as uow:
            case = await triage.register_case(
                uow,
                triage.Registration(
                    answers=yes,
                    youth_name=f"{name} Voorbeeld",
                    birth_date=today.replace(year=today.year - age, day=1),
                    bsn="",
                    situation="Demo: verzonnen casus voor de monitor.",
                    parent_names=("Ouder Voorbeeld", ""),
                    jim_name="",
                    municipality_id=orgs["Gemeente Deventer"].id,
                    domain=domain,
                    anonymous_summary=f"Verzonnen jeugdige van {age} jaar, voor de monitor.",
                ),
            )
            case_id = case.id
        # four experts a meeting, taking turns; the last meeting has the social-domain expert
        experts = [team[(i + k) % len(team)] for k in range(4)]
        async with rt.unit_of_work(staff_principal(coordinator)) as uow:
            session = await triage.plan_session(uow, case_id, held, experts)
            for provider, form, amount, unit in lines:
                await triage.add_line(
                    uow,
                    session.id,
                    orgs[provider].id,
                    "45A52",
                    form,
                    amount,
                    held_day + dt.timedelta(days=7),
                    intensity_unit=unit,
                )
            choices = await triage.attendance_choices(uow, session.id)
            hours = {
                c.participant_id: ("0" if (i + j) % 7 == 6 else ("4" if j % 2 else "3,5"))
                for j, c in enumerate(choices)
            }
            await triage.record_attendance(uow, session.id, hours)
            await triage.close_session(uow, session.id)
