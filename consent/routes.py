"""HTTP routes of consent (thin: parse, call the service, render)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from keerpunt.consent import service
from keerpunt.consent.models import ConsentRecord, Decision, Purpose
from keerpunt.platform.errors import InvalidInput, NotAllowed, NotFound
from keerpunt.platform.i18n import N_
from keerpunt.platform.models import Case
from keerpunt.platform.uow import UnitOfWork
from keerpunt.platform.web import date_field, field, form, redirect, render, require, unit_of_work


async def record(request: Request) -> Response:
    who = require(request)
    data = await form(request)
    errors: dict[str, str] = {}
    subject = field(data, "subject_member_id")
    recipient = field(data, "recipient")
    org_id: int | None = None
    role: str | None = None
    if recipient.startswith("org:") and recipient[4:].isdigit():
        org_id = int(recipient[4:])
    elif recipient.startswith("role:"):
        role = recipient[5:]
    elif recipient != "all":
        errors["recipient"] = N_("Kies met wie informatie gedeeld mag worden.")
    try:
        purpose = Purpose(field(data, "purpose"))
    except ValueError:
        errors["purpose"] = N_("Kies waarvoor de toestemming is.")
        purpose = Purpose.INFORMATION_EXCHANGE
    try:
        decision = Decision(field(data, "decision"))
    except ValueError:
        errors["decision"] = N_("Kies toestemming of bezwaar.")
        decision = Decision.CONSENT
    valid_until = date_field(data, "valid_until", errors)
    case_id = request.path_params["case_id"]
    try:
        if errors:
            raise InvalidInput(errors)
        async with unit_of_work(request, who) as uow:
            case = await _case(uow, case_id)
            await service.record_consent(
                uow,
                case,
                subject_member_id=int(subject) if subject.isdigit() else 0,
                purpose=purpose,
                decision=decision,
                recipient_org_id=org_id,
                recipient_role=role,
                obtained_how=field(data, "obtained_how"),
                explanation=field(data, "explanation"),
                valid_until=valid_until,
            )
    except InvalidInput as exc:
        # Nothing saved, nothing lost: the form comes back with what was typed.
        async with unit_of_work(request, who) as uow:
            case = await _case(uow, case_id)
            level = (await service.disclosure(uow, case)).level
            if level is service.Disclosure.NOTHING:
                raise NotFound() from None  # a case you may not know of: as if it did not exist
            overview = await service.consent_overview(uow, case, level)
        if not overview.may_record:
            raise NotAllowed() from None
        values = {k: v for k, v in data.items() if isinstance(v, str) and k != "csrf_token"}
        return render(
            request,
            "consent/_partials/consents.html",
            {"consents": overview, "consent_errors": exc.errors, "consent_values": values},
            status_code=422,
        )
    return redirect(request, "triage.case", case_id=case_id)


async def _case(uow: UnitOfWork, case_id: int) -> Case:
    case = await uow.db.get(Case, case_id)
    if case is None:
        raise NotFound()
    return case


async def withdraw(request: Request) -> Response:
    who = require(request)
    async with unit_of_work(request, who) as uow:
        rec: ConsentRecord = await service.withdraw_consent(uow, request.path_params["record_id"])
    return redirect(request, "triage.case", case_id=rec.case_id)


routes: list[BaseRoute] = [
    Route("/cases/{case_id:int}/consents", record, methods=["POST"], name="consent.record"),
    Route(
        "/consents/{record_id:int}/withdraw", withdraw, methods=["POST"], name="consent.withdraw"
    ),
]
