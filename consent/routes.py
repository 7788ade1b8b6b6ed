"""HTTP routes of consent (thin: parse, call the service, render)."""

from __future__ import annotations

import json
from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from keerpunt.consent import fhir, service
from keerpunt.consent.models import ConsentRecord, Decision, Purpose
from keerpunt.platform.errors import InvalidInput, NotAllowed, NotFound
from keerpunt.platform.i18n import N_
from keerpunt.platform.models import Case
from keerpunt.platform.principal import Principal
from keerpunt.platform.uow import UnitOfWork
from keerpunt.platform.web import (
    date_field,
    field,
    form,
    redirect,
    render,
    require,
    runtime,
    unit_of_work,
)


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
        return await _form_again(request, who, case_id, data, exc, "consent")
    return redirect(request, "triage.case", case_id=case_id)


async def _form_again(
    request: Request,
    who: Principal,
    case_id: int,
    data: Mapping[str, object],
    exc: InvalidInput,
    which: str,
) -> Response:
    """Nothing saved, nothing lost: the fragment comes back with what was typed."""
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
        {
            "consents": overview,
            f"{which}_errors": exc.errors,
            f"{which}_values": values,
        },
        status_code=422,
    )


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


async def youth_alone(request: Request) -> Response:
    """Record the legal exception: at 12 to 15 the youth's consent alone suffices."""
    who = require(request)
    data = await form(request)
    case_id = request.path_params["case_id"]
    try:
        async with unit_of_work(request, who) as uow:
            case = await _case(uow, case_id)
            await service.record_youth_alone(
                uow, case, ground=field(data, "ground"), reason=field(data, "reason")
            )
    except InvalidInput as exc:
        return await _form_again(request, who, case_id, data, exc, "youth_alone")
    return redirect(request, "triage.case", case_id=case_id)


async def end_youth_alone(request: Request) -> Response:
    who = require(request)
    async with unit_of_work(request, who) as uow:
        exc = await service.end_youth_alone(uow, request.path_params["exception_id"])
    return redirect(request, "triage.case", case_id=exc.case_id)


async def family(request: Request) -> Response:
    """The family's own page: their consents (withdraw there) and who read their data."""
    who = _family(request)
    return await _family_page(request, who, withdrawn=request.query_params.get("ingetrokken"))


async def family_withdraw(request: Request) -> Response:
    """A family member withdraws their own consent; it counts at once and is never lost."""
    who = _family(request)
    data = await form(request)
    record_id = request.path_params["record_id"]
    if field(data, "confirm") != "yes":
        return await _family_page(
            request,
            who,
            errors={record_id: N_("Zet een vinkje om te bevestigen dat u wilt intrekken.")},
            status_code=422,
        )
    async with unit_of_work(request, who) as uow:
        await service.withdraw_consent(uow, record_id)
    url = str(request.url_for("consent.family"))
    return RedirectResponse(f"{url}?ingetrokken={record_id}", status_code=303)


def _family(request: Request) -> Principal:
    who = require(request)
    if who.member_id is None:
        raise NotAllowed(N_("Deze pagina is voor het gezin."))
    return who


async def _family_page(
    request: Request,
    who: Principal,
    *,
    withdrawn: str | None = None,
    errors: dict[int, str] | None = None,
    status_code: int = 200,
) -> Response:
    async with unit_of_work(request, who) as uow:
        page = await service.family_page(uow)
    return render(
        request,
        "consent/family.html",
        {
            "page": page,
            "withdrawn": withdrawn is not None and withdrawn.isdigit(),
            "withdraw_errors": errors or {},
        },
        status_code=status_code,
    )


async def export_fhir(request: Request) -> Response:
    """Download a case's consents as a FHIR R4 Bundle (for the registrar, local team and
    coordinator; audited)."""
    who = require(request)
    async with unit_of_work(request, who) as uow:
        bundle = await fhir.case_consent_bundle(
            uow, request.path_params["case_id"], base_url=runtime(request).settings.base_url
        )
    name = f"toestemmingen-casus-{request.path_params['case_id']}.fhir.json"
    return Response(
        json.dumps(bundle, ensure_ascii=False, indent=2),
        media_type="application/fhir+json",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


routes: list[BaseRoute] = [
    Route("/cases/{case_id:int}/consents", record, methods=["POST"], name="consent.record"),
    Route(
        "/consents/{record_id:int}/withdraw", withdraw, methods=["POST"], name="consent.withdraw"
    ),
    Route("/mijn-toestemming", family, name="consent.family"),
    Route(
        "/mijn-toestemming/{record_id:int}/intrekken",
        family_withdraw,
        methods=["POST"],
        name="consent.family_withdraw",
    ),
    Route(
        "/cases/{case_id:int}/consents/youth-alone",
        youth_alone,
        methods=["POST"],
        name="consent.youth_alone",
    ),
    Route(
        "/consent-exceptions/{exception_id:int}/end",
        end_youth_alone,
        methods=["POST"],
        name="consent.youth_alone_end",
    ),
    Route("/cases/{case_id:int}/consents.fhir.json", export_fhir, name="consent.export_fhir"),
]
