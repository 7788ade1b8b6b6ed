"""A case's consents as FHIR R4 ``Consent`` resources in a ``collection`` Bundle.

For exchange with a provider's or municipality's system. Pseudonymous by design: the patient
is the case's pseudonym, the person who consented is named by role only, and the explanation
(free text, personal) stays in Keerpunt. Built as plain JSON, so the runtime needs no FHIR
library; the tests validate the output against the FHIR models (``fhir.resources``, R4B,
whose Consent is the R4 4.0.1 Consent unchanged).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import select

from keerpunt.consent.models import ConsentRecord, Decision, Purpose
from keerpunt.consent.service import Disclosure, disclosure
from keerpunt.consent.vocab import CONSENT_VOCAB
from keerpunt.platform import audit
from keerpunt.platform.db import utcnow
from keerpunt.platform.errors import NotAllowed, NotFound
from keerpunt.platform.i18n import AMSTERDAM
from keerpunt.platform.models import Case, CaseMember, Organisation, User
from keerpunt.platform.uow import UnitOfWork

__all__ = ["case_consent_bundle", "consent_bundle", "may_export"]

# Keerpunt's own identifier systems, code systems and extensions live under the installation's
# own address (KEERPUNT_BASE_URL + /fhir): a URI the region controls, as FHIR asks.
AGB_SYSTEM = "http://fhir.nl/fhir/NamingSystem/agb-z"  # Dutch provider register (AGB code)
JEUGDWET = "https://wetten.overheid.nl/BWBR0034925/"
AVG = "https://eur-lex.europa.eu/eli/reg/2016/679/oj"

# Who gave it: the youth is the patient; a parent or guardian is a RelatedPerson.
_PERFORMER = {
    "youth": ("Patient", "Jeugdige"),
    "parent": ("RelatedPerson", "Ouder met gezag"),
    "guardian": ("RelatedPerson", "Voogd"),
}


def _coding(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}]}


def _instant(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds")


def _status(rec: ConsentRecord, today: dt.date) -> str:
    """Withdrawn or past its end date: inactive; otherwise active (an objection too)."""
    if rec.withdrawn_at is not None or (rec.valid_until is not None and rec.valid_until < today):
        return "inactive"
    return "active"


def _period(rec: ConsentRecord) -> dict[str, str]:
    period = {"start": _instant(rec.recorded_at)}
    ends = []
    if rec.valid_until is not None:
        # The last valid day, to its end in Amsterdam.
        last = dt.datetime.combine(rec.valid_until, dt.time(23, 59, 59), AMSTERDAM)
        ends.append(last)
    if rec.withdrawn_at is not None:
        ends.append(rec.withdrawn_at)
    if ends:
        period["end"] = _instant(min(ends))
    return period


def _org_reference(org: Organisation | None) -> dict[str, Any]:
    if org is None:
        return {"display": "?"}
    ref: dict[str, Any] = {"type": "Organization", "display": org.name}
    if org.agb_code:
        ref["identifier"] = {"system": AGB_SYSTEM, "value": org.agb_code}
    return ref


def _actor(rec: ConsentRecord, orgs: dict[int, Organisation], base: str) -> dict[str, Any]:
    """The recipient (ontvanger): an organisation, a role at the table, or everyone at it."""
    if rec.recipient_org_id is not None:
        reference = _org_reference(orgs.get(rec.recipient_org_id))
    else:
        role = rec.recipient_role or "table"
        label = CONSENT_VOCAB["recipient_role"].get(role, "Iedereen aan tafel bij deze casus")
        reference = {
            "type": "CareTeam",
            "identifier": {"system": f"{base}/CodeSystem/case-role", "value": role},
            "display": label,
        }
    return {
        "role": _coding(
            "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
            "IRCP",
            "information recipient",
        ),
        "reference": reference,
    }


def consent_resource(
    rec: ConsentRecord,
    *,
    pseudonym: str,
    legal_basis: str,
    subject_role: str,
    custodian: Organisation | None,
    orgs: dict[int, Organisation],
    today: dt.date,
    base: str,
) -> dict[str, Any]:
    """One consent record (toestemming or bezwaar) as an R4 Consent."""
    patient = {
        "type": "Patient",
        "identifier": {"system": f"{base}/NamingSystem/case-pseudonym", "value": pseudonym},
        "display": pseudonym,
    }
    performer_type, performer_label = _PERFORMER.get(subject_role, ("RelatedPerson", "Ouder"))
    performer = (
        patient
        if performer_type == "Patient"
        else {"type": performer_type, "display": f"{performer_label} van {pseudonym}"}
    )
    objection = rec.decision == Decision.OBJECTION
    purpose = Purpose(rec.purpose)
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "id": f"keerpunt-consent-{rec.id}",
        "identifier": [{"system": f"{base}/NamingSystem/consent", "value": str(rec.id)}],
        "status": _status(rec, today),
        "scope": _coding(
            "http://terminology.hl7.org/CodeSystem/consentscope",
            "patient-privacy",
            "Privacy Consent",
        ),
        "category": [_coding("http://loinc.org", "59284-0", "Patient Consent")],
        "patient": patient,
        "dateTime": _instant(rec.recorded_at),
        "performer": [performer],
        "organization": [_org_reference(custodian)],
        "policy": [
            {"authority": "https://wetten.overheid.nl", "uri": JEUGDWET},
            {"authority": "https://eur-lex.europa.eu", "uri": AVG},
        ],
        "policyRule": _coding(
            "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "OPTOUT" if objection else "OPTIN",
            "opt-out" if objection else "opt-in",
        ),
        "provision": {
            "type": "deny" if objection else "permit",
            "period": _period(rec),
            "actor": [_actor(rec, orgs, base)],
            "purpose": [
                {
                    "system": f"{base}/CodeSystem/consent-purpose",
                    "code": purpose.value,
                    "display": CONSENT_VOCAB["purpose"][purpose.value],
                }
            ],
        },
    }
    # Keerpunt's own facts, as extensions: how the consent was obtained, and the legal basis
    # of the help (an order under the Jeugdwet needs no consent; it is recorded instead).
    resource["extension"] = [
        {"url": f"{base}/StructureDefinition/obtained-how", "valueCode": rec.obtained_how},
        {"url": f"{base}/StructureDefinition/legal-basis", "valueCode": legal_basis},
    ]
    return resource


async def consent_bundle(uow: UnitOfWork, case: Case, *, base_url: str) -> dict[str, Any]:
    """All consent records of a case, oldest first, as a FHIR ``collection`` Bundle."""
    base = base_url.rstrip("/") + "/fhir"
    db = uow.db
    records = (
        await db.scalars(
            select(ConsentRecord)
            .where(ConsentRecord.case_id == case.id)
            .order_by(ConsentRecord.recorded_at, ConsentRecord.id)
        )
    ).all()
    roles = {
        member_id: role
        for member_id, role in await db.execute(
            select(CaseMember.id, CaseMember.role).where(CaseMember.case_id == case.id)
        )
    }
    orgs = {o.id: o for o in await db.scalars(select(Organisation))}
    custodians = {
        user_id: org_id
        for user_id, org_id in await db.execute(
            select(User.id, User.organisation_id).where(
                User.id.in_({r.obtained_by_id for r in records})
            )
        )
    }
    today = dt.datetime.now(AMSTERDAM).date()
    entries = []
    for rec in records:
        resource = consent_resource(
            rec,
            pseudonym=case.pseudonym,
            legal_basis=case.legal_basis,
            subject_role=roles.get(rec.subject_member_id, ""),
            custodian=orgs.get(custodians.get(rec.obtained_by_id, -1)),
            orgs=orgs,
            today=today,
            base=base,
        )
        entries.append({"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": resource})
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "collection",
        "timestamp": _instant(utcnow()),
        "total": len(entries),
        "entry": entries,
    }


async def may_export(uow: UnitOfWork, case: Case) -> bool:
    """The registrar (aanmelder), the case's local team and the coordinator: those who record
    consent may also hand it over."""
    who = uow.who
    if not who.is_staff:
        return False
    if case.registered_by_id == who.user_id or who.has("coordinator"):
        return True
    local = await uow.db.scalar(
        select(CaseMember.id).where(
            CaseMember.case_id == case.id,
            CaseMember.user_id == who.user_id,
            CaseMember.role == "local_team",
            CaseMember.removed_at.is_(None),
        )
    )
    return local is not None


async def case_consent_bundle(uow: UnitOfWork, case_id: int, *, base_url: str) -> dict[str, Any]:
    """Export a case's consents as FHIR (audited); only for those who may record them."""
    case = await uow.db.get(Case, case_id)
    if case is None:
        raise NotFound()
    if not await may_export(uow, case):
        if (await disclosure(uow, case, audit_read=False)).level is Disclosure.NOTHING:
            raise NotFound()  # a case you may not know of: as if it did not exist
        raise NotAllowed()
    bundle = await consent_bundle(uow, case, base_url=base_url)
    await audit.record(
        uow.db,
        uow.who,
        "consent.exported",
        case_id=case.id,
        purpose="consent_export",
        detail=f"format=fhir-r4 records={bundle['total']}",
    )
    return bundle
