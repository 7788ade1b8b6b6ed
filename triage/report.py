"""The ending of a session: the chair closes it and Keerpunt writes the report (verslag) as a
web page and a PDF.

At the end of the meeting the youth and parents are asked whether the report may be shared
with each party at the table; a party they object to is left out (seed 003 §5.2). Those
answers are consent records for :attr:`Purpose.REPORT_SHARING`, written through the consent
module, and the consent module alone decides who may read the report. Someone left out gets
"not found", also when they guess the address; the address itself carries an unguessable id.
Every read is audited.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select

from keerpunt.consent import service as consent
from keerpunt.consent.service import Decision, Disclosure, Purpose
from keerpunt.platform import audit
from keerpunt.platform.errors import InvalidInput, NotFound
from keerpunt.platform.i18n import N_, gettext, local_date, local_datetime
from keerpunt.platform.models import Case, CaseMember, CaseRole, Organisation, User
from keerpunt.platform.pdf import KeerpuntPDF
from keerpunt.platform.uow import UnitOfWork
from keerpunt.triage import arrangement, plan, service
from keerpunt.triage.models import Report, SessionParticipant, TriageSession
from keerpunt.triage.vocab import VOCAB

__all__ = [
    "Party",
    "ReportView",
    "close_and_share",
    "create_report",
    "report_link",
    "report_pdf",
    "report_view",
    "reports_for_case",
    "sharing_parties",
]

_SHARING_EXPLANATION = N_(
    "Aan het einde van de bespreking gevraagd of het verslag met deze partij gedeeld mag worden."
)


async def create_report(uow: UnitOfWork, session: TriageSession, case: Case) -> Report:
    """The report of a closed session, with an unguessable id for its address."""
    existing = await uow.db.scalar(select(Report).where(Report.session_id == session.id))
    if existing is not None:
        return existing
    report = Report(
        session_id=session.id,
        public_id=secrets.token_urlsafe(32),
        created_by_id=uow.who.user_id,
    )
    uow.db.add(report)
    await uow.db.flush()
    await audit.record(
        uow.db,
        uow.who,
        "report.created",
        case_id=case.id,
        purpose="triage",
        detail=f"report={report.id} session={session.id}",
    )
    return report


@dataclass(frozen=True)
class Party:
    """An organisation at the table that may or may not receive the report."""

    organisation_id: int
    name: str


async def sharing_parties(
    uow: UnitOfWork, session_id: int, *, level: Disclosure | None = None
) -> tuple[Party, ...]:
    """The organisations of the professionals invited to the session and of the providers in
    the arrangement: the parties the family is asked about. Reading the arrangement is a read
    of step 4 like any other: without ``level`` consent decides it and the read is audited
    (the caller who passes ``level`` audited it already)."""
    session, _case = await service._session_for(uow, session_id)
    staff_orgs = await uow.db.scalars(
        select(User.organisation_id)
        .join(CaseMember, CaseMember.user_id == User.id)
        .join(SessionParticipant, SessionParticipant.member_id == CaseMember.id)
        .where(SessionParticipant.session_id == session.id)
    )
    view = await arrangement.arrangement_view(uow, session.id, level=level)
    ids = set(staff_orgs.all()) | {ln.provider_id for ln in view.lines}
    orgs = await uow.db.scalars(
        select(Organisation).where(Organisation.id.in_(ids)).order_by(Organisation.name)
    )
    return tuple(Party(o.id, o.name) for o in orgs)


async def close_and_share(uow: UnitOfWork, session_id: int, sharing: Mapping[int, bool]) -> Report:
    """The chair closes the session and records, per party, the family's answer to "may the
    report be shared with them?" (a consent or an objection of each family member who can
    consent, for :attr:`Purpose.REPORT_SHARING`). Every party must have an answer."""
    parties = await sharing_parties(uow, session_id)
    missing = [p for p in parties if p.organisation_id not in sharing]
    if missing:
        raise InvalidInput(
            {f"share_{p.organisation_id}": N_("Kies ja of nee.") for p in missing},
            N_("Vraag het gezin voor elke partij of zij het verslag mag krijgen."),
        )
    session, case = await service._session_for(uow, session_id)
    subjects = (
        await uow.db.scalars(
            select(CaseMember).where(
                CaseMember.case_id == case.id,
                CaseMember.removed_at.is_(None),
                CaseMember.role.in_([CaseRole.YOUTH, CaseRole.PARENT, CaseRole.GUARDIAN]),
            )
        )
    ).all()
    closed = await service.close_session(uow, session.id)
    for party in parties:
        for subject in subjects:
            await consent.record_consent(
                uow,
                case,
                subject_member_id=subject.id,
                purpose=Purpose.REPORT_SHARING,
                decision=Decision.CONSENT if sharing[party.organisation_id] else Decision.OBJECTION,
                recipient_org_id=party.organisation_id,
                recipient_role=None,
                obtained_how="in_person",
                explanation=_SHARING_EXPLANATION,
                valid_until=None,
            )
    report = await uow.db.scalar(select(Report).where(Report.session_id == closed.id))
    assert report is not None
    return report


# -- reading ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportView:
    public_id: str
    session: service.SessionView
    arrangement: arrangement.ArrangementView
    plan: plan.PlanView
    closed_at: dt.datetime | None
    created_at: dt.datetime

    @property
    def title(self) -> str:
        return self.session.case.title


async def _allowed(
    uow: UnitOfWork, report: Report, *, audit_read: bool = True
) -> tuple[TriageSession, Case]:
    session, case = await service._session_for(uow, report.session_id)
    decision = await consent.disclosure(uow, case, Purpose.REPORT_SHARING, audit_read=audit_read)
    if decision.level is not Disclosure.FULL:
        raise NotFound()  # left out of the distribution: not even that the report exists
    return session, case


async def _report(uow: UnitOfWork, public_id: str) -> Report:
    if not (20 <= len(public_id) <= 64):
        raise NotFound()
    report = await uow.db.scalar(select(Report).where(Report.public_id == public_id))
    if report is None:
        raise NotFound()
    return report


async def report_view(uow: UnitOfWork, public_id: str, *, how: str = "web") -> ReportView:
    """The report for this reader: only if the family allowed sharing it with them (else
    NotFound); each part redacted by their consent for information exchange. Audited."""
    report = await _report(uow, public_id)
    session, case = await _allowed(uow, report)
    table = await service.session_view(uow, session.id)
    level = table.case.level
    view = ReportView(
        public_id=report.public_id,
        session=table,
        arrangement=await arrangement.arrangement_view(uow, session.id, level=level),
        plan=await plan.plan_view(uow, session.id, level=level),
        closed_at=session.closed_at,
        created_at=report.created_at,
    )
    await audit.record(
        uow.db,
        uow.who,
        "report.read",
        case_id=case.id,
        purpose=Purpose.REPORT_SHARING.value,
        detail=f"report={report.id} as={how} level={level.name.lower()}",
    )
    return view


async def report_link(uow: UnitOfWork, session_id: int) -> str | None:
    """The report's public id if this viewer may read it (to list it where they work)."""
    report = await uow.db.scalar(select(Report).where(Report.session_id == session_id))
    if report is None:
        return None
    try:
        await _allowed(uow, report, audit_read=False)  # a link, not a read: the read audits
    except NotFound:
        return None
    return report.public_id


@dataclass(frozen=True)
class ReportLink:
    public_id: str
    scheduled_at: dt.datetime


async def reports_for_case(uow: UnitOfWork, case_id: int) -> tuple[ReportLink, ...]:
    """The reports of a case this viewer may read, to list on the case page: a party left
    out of the distribution does not see that there is one."""
    rows = await uow.db.execute(
        select(Report, TriageSession.scheduled_at)
        .join(TriageSession, TriageSession.id == Report.session_id)
        .where(TriageSession.case_id == case_id)
        .order_by(TriageSession.scheduled_at.desc())
    )
    links = []
    for rep, when in rows.all():
        try:
            await _allowed(uow, rep, audit_read=False)
        except NotFound:
            continue
        links.append(ReportLink(rep.public_id, when))
    return tuple(links)


# -- the PDF ---------------------------------------------------------------------------------------


def _t(msgid: str, **params: str) -> str:
    text = gettext(msgid)
    return text % params if params else text


def _person(label: service.PersonLabel) -> str:
    role = _t(label.role) if label.role else ""
    if role and label.name:
        return f"{label.name} ({role})"
    return label.name or role or _t(N_("Iemand aan tafel"))


def report_pdf(view: ReportView) -> bytes:
    """The report as a PDF, from the same view model as the web page (already redacted)."""
    hidden = _t(N_("(U mag dit niet zien.)"))
    pdf = KeerpuntPDF(_t(N_("Verslag triage-bespreking · vertrouwelijk")), created=view.closed_at)
    pdf.set_title(_t(N_("Verslag triage-bespreking")))
    pdf.set_creator("Keerpunt")
    pdf.add_page()
    pdf.title_line(_t(N_("Verslag triage-bespreking")) + ": " + view.title)
    pdf.para(_t(N_("Bespreking van %(when)s."), when=local_datetime(view.session.scheduled_at)))
    if view.closed_at:
        pdf.para(_t(N_("Gesloten op %(when)s."), when=local_datetime(view.closed_at)))
    if view.session.anonymous_mode:
        pdf.para(_t(N_("Deze casus is anoniem besproken.")), bold=True)

    pdf.heading(_t(N_("Wie waren uitgenodigd")))
    for person in view.session.invited:
        pdf.bullet(_person(person))

    pdf.heading(_t(N_("Verklarende analyse")))
    if not view.session.factors:
        pdf.para(_t(N_("Niets opgeschreven.")))
    for f in view.session.factors:
        area = _t(VOCAB["life_area"].get(f.life_area, f.life_area))
        kind = _t(VOCAB["factor_kind"].get(f.factor_kind, f.factor_kind))
        pdf.bullet(f"{area} · {kind}: {f.text if f.text is not None else hidden}")

    board = view.session.board
    pdf.heading(_t(N_("Gewenst perspectief")))
    if board.perspective:
        pdf.para(board.perspective)
    else:
        pdf.para(hidden if board.perspective_hidden else _t(N_("Niets opgeschreven.")))

    pdf.heading(_t(N_("Doelen")))
    if not view.session.goals:
        pdf.para(_t(N_("Niets opgeschreven.")))
    for g in view.session.goals:
        pdf.bullet(g.text if g.text is not None else hidden)

    arr = view.arrangement
    pdf.heading(_t(N_("Arrangement")))
    for ln in arr.lines:
        form = _t(VOCAB["help_form"].get(ln.help_form, ln.help_form))
        unit = _t(VOCAB["intensity_unit"].get(ln.intensity_unit, ln.intensity_unit))
        pdf.bullet(
            f"{ln.provider} · {form} · {ln.intensity} {unit} · "
            f"{local_date(ln.start_date)} – {local_date(ln.end_date)} · {ln.percent}%"
        )
        if ln.share:
            pdf.para("   " + _t(N_("Aandeel: %(share)s"), share=ln.share))
    if arr.procesregisseur_org:
        who = arr.procesregisseur_org + (
            f" ({arr.procesregisseur_person})" if arr.procesregisseur_person else ""
        )
        pdf.para(_t(N_("Procesregisseur: %(who)s"), who=who), bold=True)

    pdf.heading(_t(N_("Plan")))
    for a in view.plan.activities:
        status = _t(VOCAB["activity_status"].get(a.status, a.status))
        when = local_date(a.due_date) if a.due_date else _t(N_("geen datum"))
        pdf.bullet(
            f"{a.who if a.who is not None else hidden}: {a.what if a.what is not None else ''}"
            f" · {when} · {status}"
        )
    for ag in view.plan.agreements:
        pdf.para(_t(VOCAB["plan_topic"][ag.topic]), bold=True)
        pdf.para(ag.text if ag.text is not None else (hidden if ag.hidden else "–"))

    if view.session.notes:
        pdf.heading(_t(N_("Eigen kijk van de jeugdige, ouders en JIM")))
        for note in view.session.notes:
            step = _t(N_("Stap %(n)s"), n=str(note.step))
            text = note.text if note.text is not None else hidden
            pdf.bullet(f"{step} · {_person(note.author)}: {text}")
    return pdf.to_bytes()
