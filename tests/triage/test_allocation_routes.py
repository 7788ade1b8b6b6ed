"""The allocation pages as the manager zorgbemiddeling uses them: request, proposal with its
explanation, decision (accept / override with a reason), dispute, overview, provider list."""

from __future__ import annotations

import datetime as dt
import re

import httpx
import pytest
from sqlalchemy import func, select

from keerpunt.platform.models import AuditEntry, Case
from keerpunt.platform.runtime import Runtime
from keerpunt.triage.models import Allocation, AllocationDispute, AllocationProvider
from tests.helpers import login
from tests.triage.test_allocation_service import LONG_AGO, Ret, build_ret, request

pytestmark = pytest.mark.anyio


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("\xa0", " ")


async def as_manager(client: httpx.AsyncClient, rt: Runtime, cases: int = 1) -> tuple[Ret, str]:
    ret = await build_ret(rt, cases=cases)
    csrf = await login(client, rt, user_id=ret.manager.id)
    return ret, csrf


async def pseudonym(rt: Runtime, case_id: int) -> str:
    async with rt.sessionmaker() as db:
        case = await db.get(Case, case_id)
        assert case is not None
        return case.pseudonym


REQUEST_FORM = {
    "lot": "Systeemaanbieders Rijnmond",
    "trigger": "tables_timeout",
    "since": LONG_AGO.isoformat(),
    "domain": "jo",
    "age": "14",
    "location": "Rotterdam",
    "milieu": "3",
    "expertise": "trauma",
}


async def test_request_then_proposal_then_accept(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    ret, csrf = await as_manager(client, runtime)
    r = await client.get("/allocation/requests/new")
    assert r.status_code == 200 and "Pseudoniem van de casus" in r.text
    name = await pseudonym(runtime, ret.case_ids[0])
    r = await client.post(
        "/allocation/requests/new",
        data={**REQUEST_FORM, "pseudonym": name.lower(), "csrf_token": csrf},
    )
    assert r.status_code == 303, text_of(r.text)
    r = await client.get(r.headers["location"])
    page = text_of(r.text)
    assert f"Voorstel voor toewijzing van {name}" in page
    assert "Voorstel: Enver." in page
    assert "Meer aanbieders passen" in page
    assert "Toewijzingen in dit domein tot nu toe: 0. Aan de beurt was: Enver." in page
    assert "Deze toewijzing is beurt 1. Daarna is Ihub aan de beurt." in page
    assert "Youz: past niet" in page and "Nee, expertise: Mist expertise: trauma." in page
    assert "Nee, domein: Werkt in een ander domein: GGZ." in page
    assert "Werkt in een ander domein: J&amp;O." not in page  # J&O cases: no J&O elsewhere
    assert "Jongere" not in page  # no names: the pseudonym only
    rid = int(r.url.path.rsplit("/", 1)[1])
    enver = str(ret.providers["Enver"])
    assert f'name="seen_proposal" value="{enver}"' in r.text
    r = await client.post(
        f"/allocation/requests/{rid}/decide",
        data={
            "provider_id": enver,
            "expected_turn": "0",
            "seen_proposal": enver,
            "csrf_token": csrf,
        },
    )
    assert r.status_code == 303
    r = await client.get(r.headers["location"])
    page = text_of(r.text)
    assert f"{name} is toegewezen aan Enver" in page
    assert "Het voorstel van Keerpunt is gevolgd." in page
    assert "beurt 1" in page
    # the proposal page of a decided request leads to the decision
    r = await client.get(f"/allocation/requests/{rid}")
    assert r.status_code == 303


async def test_override_without_reason_keeps_the_form_and_says_why(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    ret, csrf = await as_manager(client, runtime)
    rid = await request(runtime, ret, ret.case_ids[0])
    timon = str(ret.providers["Timon"])
    r = await client.post(
        f"/allocation/requests/{rid}/decide",
        data={"provider_id": timon, "expected_turn": "0", "reason": "", "csrf_token": csrf},
    )
    assert r.status_code == 422
    assert "U kiest een andere aanbieder dan het voorstel. Schrijf op waarom." in r.text
    assert 'id="reason-error"' in r.text and 'aria-invalid="true"' in r.text
    assert f'value="{timon}" required checked' in r.text  # their choice kept
    async with runtime.sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(Allocation)) == 0
    r = await client.post(
        f"/allocation/requests/{rid}/decide",
        data={
            "provider_id": timon,
            "expected_turn": "0",
            "reason": "Timon heeft nu plek.",
            "csrf_token": csrf,
        },
    )
    assert r.status_code == 303
    page = text_of((await client.get(r.headers["location"])).text)
    assert "Afgeweken van het voorstel (voorstel was Enver). Reden: Timon heeft nu plek." in page


async def test_a_moved_turn_shows_the_new_proposal(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    ret, csrf = await as_manager(client, runtime, cases=2)
    r1 = await request(runtime, ret, ret.case_ids[0])
    r2 = await request(runtime, ret, ret.case_ids[1])
    enver = str(ret.providers["Enver"])
    ok = await client.post(
        f"/allocation/requests/{r1}/decide",
        data={"provider_id": enver, "expected_turn": "0", "csrf_token": csrf},
    )
    assert ok.status_code == 303
    stale = await client.post(
        f"/allocation/requests/{r2}/decide",
        data={"provider_id": enver, "expected_turn": "0", "csrf_token": csrf},
    )
    assert stale.status_code == 409
    page = text_of(stale.text)
    assert "Intussen is er een andere toewijzing gedaan" in page
    assert "Voorstel: Ihub." in page


async def test_a_request_too_early_or_wrong_is_refused_in_dutch(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    ret, csrf = await as_manager(client, runtime)
    name = await pseudonym(runtime, ret.case_ids[0])
    r = await client.post(
        "/allocation/requests/new",
        data={
            **REQUEST_FORM,
            "pseudonym": name,
            "since": (dt.date.today() - dt.timedelta(days=3)).isoformat(),
            "csrf_token": csrf,
        },
    )
    assert r.status_code == 422
    assert "De mandaatregeling geldt pas vanaf" in r.text
    r = await client.post(
        "/allocation/requests/new",
        data={**REQUEST_FORM, "pseudonym": "K-NOPE", "age": "oud", "csrf_token": csrf},
    )
    assert r.status_code == 422
    assert "Er is geen casus met dit pseudoniem." in r.text
    assert 'value="oud"' in r.text  # nothing typed is lost


async def test_dispute_pages(client: httpx.AsyncClient, runtime: Runtime) -> None:
    ret, csrf = await as_manager(client, runtime)
    rid = await request(runtime, ret, ret.case_ids[0])
    await client.post(
        f"/allocation/requests/{rid}/decide",
        data={"provider_id": str(ret.providers["Enver"]), "expected_turn": "0", "csrf_token": csrf},
    )
    async with runtime.sessionmaker() as db:
        aid = await db.scalar(select(Allocation.id))
    r = await client.post(
        f"/allocation/{aid}/disputes",
        data={"provider_id": str(ret.providers["Enver"]), "note": "", "csrf_token": csrf},
    )
    assert r.status_code == 422 and "Schrijf op wat er is besproken en waarom." in r.text
    r = await client.post(
        f"/allocation/{aid}/disputes",
        data={
            "provider_id": str(ret.providers["Enver"]),
            "spoke_with": "Piet, manager Enver",
            "note": "Geen plek.",
            "csrf_token": csrf,
        },
    )
    assert r.status_code == 303
    async with runtime.sessionmaker() as db:
        did = await db.scalar(select(AllocationDispute.id))
    r = await client.post(
        f"/allocation/disputes/{did}/escalate",
        data={"allocation_id": str(aid), "note": "Geen overeenstemming.", "csrf_token": csrf},
    )
    assert r.status_code == 303
    page = text_of((await client.get(f"/allocation/{aid}")).text)
    assert "Bezwaar van Enver: loopt, nu bij: Gesprek met de manager zorgbemiddeling" in page
    assert "met Piet, manager Enver" in page
    assert "De toewijzing blijft staan, ook als er een geschil loopt." in page
    r = await client.post(
        f"/allocation/disputes/{did}/resolve",
        data={"allocation_id": str(aid), "note": "Eens.", "csrf_token": csrf},
    )
    assert r.status_code == 303
    async with runtime.sessionmaker() as db:
        actions = set((await db.scalars(select(AuditEntry.action))).all())
    assert {"allocation.dispute_opened", "allocation.dispute_escalated"} <= actions
    assert "allocation.dispute_resolved" in actions


async def test_overview_and_provider_list(client: httpx.AsyncClient, runtime: Runtime) -> None:
    ret, csrf = await as_manager(client, runtime)
    r = await client.get("/allocation/overview")
    assert r.status_code == 200
    page = text_of(r.text)
    assert "Enver Jeugd en opvoeding (J&O) 0 0 0 0" in page
    assert "Totaal 0" in page
    r = await client.get("/allocation/overview?h=2025H1")
    assert "Januari tot en met juni 2025" in text_of(r.text)
    r = await client.get("/allocation/providers")
    assert r.status_code == 200
    page = text_of(r.text)
    assert "1. Enver" in page and "1. Yulius" in page and "1. Pameijer" in page
    async with runtime.sessionmaker() as db:
        row = await db.scalar(
            select(AllocationProvider).where(
                AllocationProvider.organisation_id == ret.providers["Youz"]
            )
        )
    assert row is not None
    form = {
        "row_id": str(row.id),
        "organisation_id": str(row.organisation_id),
        "lot": row.lot,
        "version": str(row.version),
        "domain": "ggz",
        "position": "2",
        "expertise": "angst, verslaving",
        "min_age": "12",
        "max_age": "9",
        "locations": "Rotterdam",
        "milieus": "3",
        "contract_active": "yes",
        "csrf_token": csrf,
    }
    r = await client.post("/allocation/providers", data=form)
    assert r.status_code == 422
    assert f'id="p{row.id}-max_age-error"' in r.text and 'value="9"' in r.text
    r = await client.post("/allocation/providers", data={**form, "max_age": "23"})
    assert r.status_code == 303
    r = await client.post("/allocation/providers", data={**form, "max_age": "23"})
    assert r.status_code == 409  # the same stale version again
    assert "Iemand anders heeft deze aanbieder intussen veranderd." in r.text


async def test_only_the_manager_sees_and_changes_allocation(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    ret = await build_ret(runtime)
    rid = await request(runtime, ret, ret.case_ids[0])
    csrf = await login(client, runtime, user_id=ret.registrar.id)
    for path in ("/allocation", f"/allocation/requests/{rid}", "/allocation/providers"):
        assert (await client.get(path)).status_code == 403
    r = await client.post(
        f"/allocation/requests/{rid}/decide",
        data={"provider_id": str(ret.providers["Enver"]), "expected_turn": "0", "csrf_token": csrf},
    )
    assert r.status_code == 403
    # the coordinator may read the overview (counts only)
    await login(client, runtime, user_id=ret.coordinator.id)
    assert (await client.get("/allocation/overview")).status_code == 200
    assert (await client.get("/allocation")).status_code == 403


async def test_state_changes_need_the_csrf_token(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    ret, _csrf = await as_manager(client, runtime)
    rid = await request(runtime, ret, ret.case_ids[0])
    r = await client.post(
        f"/allocation/requests/{rid}/decide",
        data={"provider_id": str(ret.providers["Enver"]), "expected_turn": "0"},
    )
    assert r.status_code == 403
    async with runtime.sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(Allocation)) == 0


async def test_a_fired_trigger_waits_until_the_needs_are_filled_in(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    from keerpunt.platform.principal import SYSTEM
    from keerpunt.triage import allocation_service as alloc
    from keerpunt.triage.allocation import Domain, TriggerKind

    ret, csrf = await as_manager(client, runtime)
    async with runtime.unit_of_work(SYSTEM) as uow:
        req = await alloc.trigger_fired(
            uow, ret.case_ids[0], TriggerKind.TABLES_TIMEOUT, LONG_AGO, Domain.JO
        )
        rid = req.id
    page = text_of((await client.get("/allocation")).text)
    assert "eerst invullen wat de jongere nodig heeft" in page
    r = await client.get(f"/allocation/requests/{rid}")
    assert r.status_code == 303 and r.headers["location"].endswith(f"/requests/{rid}/needs")
    r = await client.get(f"/allocation/requests/{rid}/needs")
    name = await pseudonym(runtime, ret.case_ids[0])
    assert f"Wat heeft {name} nodig?" in text_of(r.text)
    assert 'value="jo" required checked' in r.text  # the domain the lifecycle reported
    form = {k: v for k, v in REQUEST_FORM.items()}
    r = await client.post(
        f"/allocation/requests/{rid}/needs", data={**form, "age": "", "csrf_token": csrf}
    )
    assert r.status_code == 422 and 'id="age-error"' in r.text
    r = await client.post(f"/allocation/requests/{rid}/needs", data={**form, "csrf_token": csrf})
    assert r.status_code == 303
    page = text_of((await client.get(r.headers["location"])).text)
    assert "Voorstel: Enver." in page
