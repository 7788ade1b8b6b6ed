"""The ending: closing with the family's answer per party, the report for those allowed only
(404 for the rest, also when guessing), filtered per reader, every read audited; the PDF."""

from __future__ import annotations

import io
import secrets

import httpx
import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from keerpunt.consent.models import ConsentRecord
from keerpunt.platform.errors import InvalidInput, NotFound
from keerpunt.platform.models import AuditEntry, CaseMember, Organisation
from keerpunt.platform.principal import family_principal, staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.triage import arrangement, plan, report
from keerpunt.triage import service as triage
from tests.helpers import login
from tests.triage.factories import World, build_world

pytestmark = pytest.mark.anyio

GOAL = "Ik wil weer naar school en voetballen met Zoë, één keer per week (ĳverig!)"


async def _orgs(rt: Runtime) -> dict[str, int]:
    async with rt.sessionmaker() as db:
        return {o.name: o.id for o in await db.scalars(select(Organisation))}


async def _meeting(
    rt: Runtime, share_with_accare: bool = False, share_with_registrar: bool = True
) -> tuple[World, str]:
    """A whole meeting: a goal, a line, an activity, a crisis plan; closed with the family
    saying yes to Karakter and the chair's organisation, and no (or yes) to Accare."""
    w = await build_world(rt)
    async with rt.unit_of_work(staff_principal(w.expert)) as uow:
        await triage.add_factor(uow, w.session_id, "school", "perpetuating", "Verzuim sinds mei")
        await triage.add_goal(uow, w.session_id, GOAL)
        await triage.add_line(
            uow,
            w.session_id,
            w.provider.id,
            "45A52",
            "ambulant",
            "3",
            None,
            share="Gezinsbehandeling bij Sem thuis",
        )
        await plan.add_activity(uow, w.session_id, "Ruud", "Gesprek met de mentor", None)
        await plan.set_agreement(uow, w.session_id, "crisis", "Eerst Oom Kees bellen", 0)
    orgs = await _orgs(rt)
    async with rt.unit_of_work(staff_principal(w.coordinator)) as uow:
        await arrangement.designate(uow, w.session_id, w.provider.id, w.expert.id)
        rep = await report.close_and_share(
            uow,
            w.session_id,
            {
                orgs["Karakter"]: True,
                orgs["Pactum"]: True,
                orgs["Wijkteam"]: share_with_registrar,
                orgs["Accare"]: share_with_accare,
            },
        )
    return w, rep.public_id


async def test_closing_needs_the_familys_answer_for_every_party(runtime: Runtime) -> None:
    w = await build_world(runtime)
    orgs = await _orgs(runtime)
    async with runtime.unit_of_work(staff_principal(w.expert)) as uow:
        await triage.add_line(uow, w.session_id, w.provider.id, "45A52", "ambulant", "3", None)
    async with runtime.unit_of_work(staff_principal(w.coordinator)) as uow:
        parties = await report.sharing_parties(uow, w.session_id)
        assert [p.name for p in parties] == ["Accare", "Karakter", "Pactum", "Wijkteam"]
        with pytest.raises(InvalidInput) as info:
            await report.close_and_share(
                uow, w.session_id, {orgs["Karakter"]: True, orgs["Wijkteam"]: True}
            )
        assert set(info.value.errors) == {f"share_{orgs['Accare']}", f"share_{orgs['Pactum']}"}
    async with runtime.sessionmaker() as db:
        purposes = (await db.scalars(select(ConsentRecord.purpose))).all()
    assert "report_sharing" not in purposes  # nothing recorded


async def _reads_since(rt: Runtime, seq: int) -> list[tuple[str, str, str]]:
    async with rt.sessionmaker() as db:
        rows = await db.execute(
            select(AuditEntry.actor, AuditEntry.action, AuditEntry.purpose)
            .where(AuditEntry.seq > seq)
            .order_by(AuditEntry.seq)
        )
    return [tuple(r) for r in rows.all()]


async def _last_seq(rt: Runtime) -> int:
    async with rt.sessionmaker() as db:
        return int(await db.scalar(select(func.coalesce(func.max(AuditEntry.seq), 0))) or 0)


async def test_the_parties_are_read_from_step_4_as_an_audited_read_of_the_case(
    runtime: Runtime,
) -> None:
    """Asking the family about the parties reads the arrangement (step 4, its stated shares
    included): like every other read of step 4 that is a read of the case, audited at the
    level consent allows the chair, on the closing form and when closing."""
    w = await build_world(runtime)
    orgs = await _orgs(runtime)
    async with runtime.unit_of_work(staff_principal(w.expert)) as uow:
        await triage.add_line(uow, w.session_id, w.provider.id, "45A52", "ambulant", "3", None)
    chair = f"user:{w.coordinator.id}"
    seq = await _last_seq(runtime)
    async with runtime.unit_of_work(staff_principal(w.coordinator)) as uow:
        await report.sharing_parties(uow, w.session_id)
    assert (chair, "case.read", "information_exchange") in await _reads_since(runtime, seq)
    seq = await _last_seq(runtime)
    async with runtime.unit_of_work(staff_principal(w.coordinator)) as uow:
        await report.close_and_share(uow, w.session_id, dict.fromkeys(orgs.values(), True))
    assert (chair, "case.read", "information_exchange") in await _reads_since(runtime, seq)


async def test_answers_become_report_sharing_records_of_the_consent_module(
    runtime: Runtime,
) -> None:
    await _meeting(runtime)
    orgs = await _orgs(runtime)
    async with runtime.sessionmaker() as db:
        rows = (
            await db.scalars(select(ConsentRecord).where(ConsentRecord.purpose == "report_sharing"))
        ).all()
    by_org = {(r.recipient_org_id, r.decision) for r in rows}
    assert by_org == {
        (orgs["Wijkteam"], "consent"),
        (orgs["Karakter"], "consent"),
        (orgs["Pactum"], "consent"),
        (orgs["Accare"], "objection"),
    }
    assert len(rows) == 8  # youth and parent, four parties each


async def test_a_left_out_party_gets_not_found_and_the_others_read_it(runtime: Runtime) -> None:
    w, public_id = await _meeting(runtime)
    async with runtime.unit_of_work(staff_principal(w.outsider_expert)) as uow:
        with pytest.raises(NotFound):
            await report.report_view(uow, public_id)
        assert await report.report_link(uow, w.session_id) is None
    async with runtime.unit_of_work(staff_principal(w.expert)) as uow:
        view = await report.report_view(uow, public_id)
        assert await report.report_link(uow, w.session_id) == public_id
    assert view.title == "Sem Canarie"
    assert [g.text for g in view.session.goals] == [GOAL]
    assert view.arrangement.lines[0].share == "Gezinsbehandeling bij Sem thuis"
    assert view.arrangement.procesregisseur_org == "Karakter"
    assert {a.topic: a.text for a in view.plan.agreements}["crisis"] == "Eerst Oom Kees bellen"
    async with runtime.sessionmaker() as db:
        parent = await db.get(CaseMember, w.members["parent"])
        assert parent is not None
    async with runtime.unit_of_work(family_principal(parent)) as uow:
        family = await report.report_view(uow, public_id)
    assert family.title == "Sem Canarie"
    async with runtime.sessionmaker() as db:
        reads = (
            await db.scalars(select(AuditEntry.actor).where(AuditEntry.action == "report.read"))
        ).all()
    assert reads == [f"user:{w.expert.id}", f"member:{parent.id}"]


async def test_each_part_is_filtered_for_the_reader(runtime: Runtime) -> None:
    # The family lets Accare have the report, but never consented to share the case's
    # personal data with Accare: Accare reads the report under the pseudonym.
    w, public_id = await _meeting(runtime, share_with_accare=True)
    async with runtime.unit_of_work(staff_principal(w.outsider_expert)) as uow:
        view = await report.report_view(uow, public_id)
    assert view.title != "Sem Canarie" and view.title.startswith("K-")
    assert [g.text for g in view.session.goals] == [None]
    assert view.arrangement.lines[0].share is None
    assert view.arrangement.lines[0].provider == "Karakter"
    pdf = PdfReader(io.BytesIO(report.report_pdf(view)))
    text = "".join(page.extract_text() for page in pdf.pages)
    for secret in ("Sem Canarie", "Zoë", "Oom Kees", "Verzuim", "Gesprek met de mentor"):
        assert secret not in text


async def test_the_pdf_reads_back_with_dutch_letters(runtime: Runtime) -> None:
    w, public_id = await _meeting(runtime)
    async with runtime.unit_of_work(staff_principal(w.expert)) as uow:
        view = await report.report_view(uow, public_id, how="pdf")
    data = report.report_pdf(view)
    assert data.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(data))
    text = " ".join(" ".join(page.extract_text().split()) for page in reader.pages)
    assert "Verslag triage-bespreking: Sem Canarie" in text
    assert "Zoë, één keer per week" in text
    assert "Verzuim sinds mei" in text
    assert "Procesregisseur: Karakter (Ruud Regie)" in text
    assert "Eerst Oom Kees bellen" in text
    assert reader.metadata is not None and reader.metadata.title == "Verslag triage-bespreking"


async def test_over_http_left_out_and_guessed_addresses_are_404_and_pdf_downloads(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w, public_id = await _meeting(runtime)
    await login(client, runtime, user_id=w.outsider_expert.id)
    assert (await client.get(f"/triage/reports/{public_id}")).status_code == 404
    assert (await client.get(f"/triage/reports/{public_id}.pdf")).status_code == 404
    listing = await client.get(f"/cases/{w.case_id}/reports")
    assert listing.status_code == 200 and public_id not in listing.text
    client.cookies.clear()
    await login(client, runtime, user_id=w.expert.id)
    guessed = secrets.token_urlsafe(32)
    assert (await client.get(f"/triage/reports/{guessed}")).status_code == 404
    assert (await client.get(f"/triage/reports/{w.session_id}")).status_code == 404
    listed = await client.get(f"/cases/{w.case_id}/reports")
    assert f"/triage/reports/{public_id}" in listed.text
    assert f"/cases/{w.case_id}" in (await client.get(f"/cases/{w.case_id}")).text
    page = await client.get(f"/triage/reports/{public_id}")
    assert page.status_code == 200 and "Zoë" in page.text and "Oom Kees" in page.text
    pdf = await client.get(f"/triage/reports/{public_id}.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert "attachment" in pdf.headers["content-disposition"]
    assert pdf.headers["cache-control"] == "no-store"
    assert "Sem Canarie" in PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()


async def test_without_the_familys_answers_the_report_stays_with_the_family(
    runtime: Runtime,
) -> None:
    # Closed without asking (the plain close): nobody outside the family gets the report.
    w = await build_world(runtime)
    async with runtime.unit_of_work(staff_principal(w.expert)) as uow:
        await triage.add_line(uow, w.session_id, w.provider.id, "45A52", "ambulant", "3", None)
    async with runtime.unit_of_work(staff_principal(w.coordinator)) as uow:
        await triage.close_session(uow, w.session_id)
    async with runtime.unit_of_work(staff_principal(w.expert)) as uow:
        assert await report.report_link(uow, w.session_id) is None
    async with runtime.sessionmaker() as db:
        parent = await db.get(CaseMember, w.members["parent"])
        assert parent is not None
    async with runtime.unit_of_work(family_principal(parent)) as uow:
        public_id = await report.report_link(uow, w.session_id)
        assert public_id is not None
        assert (await report.report_view(uow, public_id)).title == "Sem Canarie"


async def test_a_no_for_the_registrars_organisation_is_kept_too(runtime: Runtime) -> None:
    """The family is asked about the organisation that registered the case like any other
    party: its "no" keeps the report from it, although it holds the case file itself."""
    w, public_id = await _meeting(runtime, share_with_registrar=False)
    async with runtime.unit_of_work(staff_principal(w.registrar)) as uow:
        with pytest.raises(NotFound):
            await report.report_view(uow, public_id)
        await triage.case_view(uow, w.case_id)  # the case file itself stays open to it
    async with runtime.unit_of_work(staff_principal(w.expert)) as uow:
        assert (await report.report_view(uow, public_id)) is not None
