"""Every free text the table reads under the pseudonym gets the same second look at identifying
data as factors, goals and notes: the imported analysis, the youth's perspective, the plan's
activities and agreements (informing each other, the municipality, the crisis plan), and a
provider's stated share. Caught before anything is saved, nothing typed is lost, and after a
deliberate tick it is saved as written."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from keerpunt.platform.principal import staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.triage import plan
from keerpunt.triage import service as triage
from keerpunt.triage.models import (
    ArrangementLine,
    Factor,
    PlanActivity,
    PlanAgreement,
    SessionBoard,
)
from tests.helpers import login
from tests.triage.factories import World, build_world

pytestmark = pytest.mark.anyio

HX = {"HX-Request": "true"}
PHONE = "bel moeder op 06-12345678"


async def _count(rt: Runtime, model: Any, world: World) -> int:
    async with rt.sessionmaker() as db:
        if model is SessionBoard:
            text = await db.scalar(
                select(SessionBoard.perspective_enc).where(
                    SessionBoard.session_id == world.session_id
                )
            )
            return int(text is not None)
        return int(await db.scalar(select(func.count()).select_from(model)) or 0)


def _s(w: World) -> str:
    return f"/triage/sessions/{w.session_id}"


FIELDS: list[tuple[str, Callable[[World], str], Callable[[World, str], dict[str, str]], Any]] = [
    (
        "imported analysis",
        lambda w: f"{_s(w)}/factors/import",
        lambda w, t: {"analysis": f"Thuis\n{t}"},
        Factor,
    ),
    (
        "perspective",
        lambda w: f"{_s(w)}/perspective",
        lambda w, t: {"perspective": t, "version": "0"},
        SessionBoard,
    ),
    (
        "activity: who",
        lambda w: f"{_s(w)}/plan/activities",
        lambda w, t: {"who": t, "what": "Belt school"},
        PlanActivity,
    ),
    (
        "activity: what",
        lambda w: f"{_s(w)}/plan/activities",
        lambda w, t: {"who": "Mentor", "what": t},
        PlanActivity,
    ),
    (
        "how parties inform each other",
        lambda w: f"{_s(w)}/plan/agreements/informing",
        lambda w, t: {"text": t, "version": "0"},
        PlanAgreement,
    ),
    (
        "crisis plan",
        lambda w: f"{_s(w)}/plan/agreements/crisis",
        lambda w, t: {"text": t, "version": "0"},
        PlanAgreement,
    ),
    (
        "municipality",
        lambda w: f"{_s(w)}/plan/agreements/municipality",
        lambda w, t: {"text": t, "version": "0"},
        PlanAgreement,
    ),
    (
        "stated share",
        lambda w: f"{_s(w)}/arrangement/lines",
        lambda w, t: {
            "provider_id": str(w.provider.id),
            "help_form": "ambulant",
            "product_code": "45A52",
            "amount": "2",
            "intensity_unit": "hour",
            "share": t,
        },
        ArrangementLine,
    ),
]


@pytest.mark.parametrize(
    ("url", "form", "model"), [f[1:] for f in FIELDS], ids=[f[0] for f in FIELDS]
)
async def test_identifying_text_under_the_pseudonym_is_held_until_looked_at_again(
    client: httpx.AsyncClient,
    runtime: Runtime,
    url: Callable[[World], str],
    form: Callable[[World, str], dict[str, str]],
    model: Any,
) -> None:
    world = await build_world(runtime, consent_to_expert_org=False)  # the expert: pseudonym
    csrf = await login(client, runtime, user_id=world.expert.id)
    h = {**HX, "X-CSRF-Token": csrf}
    typed = f"Afspraak: {PHONE}."
    resp = await client.post(url(world), headers=h, data=form(world, typed))
    assert resp.status_code == 422, resp.text
    assert "herkenbare gegevens" in resp.text
    assert typed in resp.text  # nothing typed is lost
    assert 'name="confirm_identifying"' in resp.text
    assert await _count(runtime, model, world) == 0  # nothing written

    resp = await client.post(
        url(world), headers=h, data={**form(world, typed), "confirm_identifying": "yes"}
    )
    assert resp.status_code == 200, resp.text
    assert await _count(runtime, model, world) >= 1


@pytest.mark.parametrize("consent_to_expert_org", [False, True], ids=["plain", "in full"])
@pytest.mark.parametrize(
    ("url", "form", "model"), [f[1:] for f in FIELDS], ids=[f[0] for f in FIELDS]
)
async def test_plain_text_and_writers_who_see_the_case_in_full_need_no_extra_step(
    client: httpx.AsyncClient,
    runtime: Runtime,
    url: Callable[[World], str],
    form: Callable[[World, str], dict[str, str]],
    model: Any,
    consent_to_expert_org: bool,
) -> None:
    """Under the pseudonym, text without identifying data is saved at once; a writer who sees
    the case in full writes only for those allowed to read it: no extra step either."""
    world = await build_world(runtime, consent_to_expert_org=consent_to_expert_org)
    csrf = await login(client, runtime, user_id=world.expert.id)
    h = {**HX, "X-CSRF-Token": csrf}
    text = f"Afspraak: {PHONE}." if consent_to_expert_org else "Veel ruzie thuis over school."
    resp = await client.post(url(world), headers=h, data=form(world, text))
    assert resp.status_code == 200, resp.text
    assert await _count(runtime, model, world) >= 1


async def test_editing_an_anonymous_activity_gets_the_same_second_look(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """An anonymous activity stays read by everyone at the table: a name typed into it by the
    registrar, who sees the case in full, is caught too."""
    world = await build_world(runtime, consent_to_expert_org=False)
    async with runtime.unit_of_work(staff_principal(world.expert)) as uow:
        row = await plan.add_activity(uow, world.session_id, "Mentor", "Belt school", None)
        activity_id, version = row.id, row.version
    csrf = await login(client, runtime, user_id=world.registrar.id)
    url = f"{_s(world)}/plan/activities/{activity_id}"
    form = {"who": "Sem Canarie", "what": "Belt school", "version": str(version)}
    h = {**HX, "X-CSRF-Token": csrf}
    resp = await client.post(url, headers=h, data=form)
    assert resp.status_code == 422, resp.text
    assert "herkenbare gegevens" in resp.text and "Sem Canarie" in resp.text
    resp = await client.post(url, headers=h, data={**form, "confirm_identifying": "yes"})
    assert resp.status_code == 200, resp.text


async def test_editing_an_anonymous_agreement_gets_the_same_second_look(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await build_world(runtime, consent_to_expert_org=False)
    async with runtime.unit_of_work(staff_principal(world.expert)) as uow:
        row = await plan.set_agreement(uow, world.session_id, "crisis", "Bel de huisarts", 0)
        version = row.version
    csrf = await login(client, runtime, user_id=world.registrar.id)
    url = f"{_s(world)}/plan/agreements/crisis"
    form = {"text": "Bel eerst Ma Canarie", "version": str(version)}
    h = {**HX, "X-CSRF-Token": csrf}
    resp = await client.post(url, headers=h, data=form)
    assert resp.status_code == 422, resp.text
    assert "herkenbare gegevens" in resp.text and "Bel eerst Ma Canarie" in resp.text
    resp = await client.post(url, headers=h, data={**form, "confirm_identifying": "yes"})
    assert resp.status_code == 200, resp.text


async def test_the_services_hold_the_text_too(runtime: Runtime) -> None:
    """The check sits in the save functions, not only behind the forms."""
    from keerpunt.platform.errors import InvalidInput

    world = await build_world(runtime, consent_to_expert_org=False)
    async with runtime.unit_of_work(staff_principal(world.expert)) as uow:
        with pytest.raises(InvalidInput) as caught:
            await triage.set_perspective(uow, world.session_id, PHONE, 0)
    assert set(caught.value.errors) == {"perspective", "confirm_identifying"}
