"""HTTP routes for importing files (inlezen) and confirming proposed allocations (thin: parse,
call the service, render)."""

from __future__ import annotations

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from keerpunt.platform.errors import InvalidInput
from keerpunt.platform.i18n import N_, today
from keerpunt.platform.principal import Principal
from keerpunt.platform.security import FORM_TOO_LARGE, MAX_FORM_BYTES
from keerpunt.platform.web import field, form, render, require, unit_of_work
from keerpunt.settlement.imports import (
    ENCODING_LABELS,
    Encoding,
    ImportKind,
    ImportRejected,
    RowError,
    column_label,
    import_file,
    import_page,
)
from keerpunt.settlement.proposals import (
    PROPOSAL_FIELDS,
    confirm_proposal,
    proposal_form,
    read_proposal_form,
)


async def _page(
    request: Request,
    who: Principal,
    *,
    kind: str = "",
    errors: dict[str, str] | None = None,
    rows: tuple[RowError, ...] = (),
    filename: str = "",
    done: tuple[ImportKind, int] | None = None,
    encoding: Encoding | None = None,
    status_code: int = 200,
) -> Response:
    async with unit_of_work(request, who) as uow:
        page = await import_page(uow)
    chosen = ImportKind(kind) if kind in ImportKind.__members__.values() else None
    return render(
        request,
        "settlement/import.html",
        {
            "page": page,
            "chosen": chosen,
            "errors": errors or {},
            "rows": [
                (e.row, column_label(chosen, e.column) if chosen else "", e.text()) for e in rows
            ],
            "filename": filename,
            "done": done,
            "max_mb": MAX_FORM_BYTES // 2**20,
            # How a CSV file's bytes were read: a wrong guess shows as odd letters in names.
            "read_as": ENCODING_LABELS[encoding] if encoding not in {None, Encoding.XLSX} else "",
            "read_as_guess": encoding is Encoding.CP1252,  # not UTF-8: Excel's own "CSV"
        },
        status_code=status_code,
    )


async def import_view(request: Request) -> Response:
    who = require(request)
    raw_kind = request.query_params.get("kind", "")
    raw_count = request.query_params.get("count", "")
    raw_encoding = request.query_params.get("encoding", "")
    done = None
    if raw_kind in ImportKind.__members__.values() and raw_count.isdecimal():
        done = (ImportKind(raw_kind), int(raw_count))
    encoding = Encoding(raw_encoding) if raw_encoding in Encoding.__members__.values() else None
    if getattr(request.state, FORM_TOO_LARGE, False):
        # A file past the form limit: the security layer read none of it (the page, 413).
        return await _page(request, who, errors={"file": TOO_LARGE_FILE}, status_code=413)
    return await _page(request, who, kind=raw_kind, done=done, encoding=encoding if done else None)


TOO_LARGE_FILE = N_(
    "Het bestand is te groot (meer dan %(mb)s MB). Splits het bestand in delen en lees die een "
    "voor een in, of sla het op als Excel-werkmap (.xlsx): dat is kleiner. Er is niets "
    "opgeslagen."
)


async def import_upload(request: Request) -> Response:
    who = require(request)
    async with request.form() as data:
        kind = field(data, "kind")
        upload = data.get("file")
        content = await upload.read() if isinstance(upload, UploadFile) else b""
        filename = (upload.filename or "") if isinstance(upload, UploadFile) else ""
    errors: dict[str, str] = {}
    if kind not in ImportKind.__members__.values():
        errors["kind"] = N_("Kies wat u wilt inlezen.")
    if not content:
        errors["file"] = N_("Kies een bestand (CSV of Excel).")
    if errors:
        return await _page(request, who, kind=kind, errors=errors, status_code=422)
    try:
        # One transaction: a file with any bad row rolls back and leaves nothing behind.
        async with unit_of_work(request, who) as uow:
            result = await import_file(uow, ImportKind(kind), content, filename)
    except ImportRejected as exc:
        return await _page(
            request,
            who,
            kind=kind,
            rows=exc.errors,
            filename=filename,
            encoding=exc.encoding,
            status_code=422,
        )
    url = request.url_for("settlement.import").include_query_params(
        kind=result.kind.value, count=result.count, encoding=result.encoding.value
    )
    return RedirectResponse(str(url), status_code=303)


# ---- proposed allocations (voorstellen uit het arrangement) ----


async def proposal_confirm(request: Request) -> Response:
    who = require(request)
    data = await form(request)
    values = {name: field(data, name) for name in PROPOSAL_FIELDS}
    try:
        async with unit_of_work(request, who) as uow:
            draft = await read_proposal_form(uow, values)
            saved = await confirm_proposal(uow, draft, today())
    except InvalidInput as exc:
        async with unit_of_work(request, who) as uow:
            proposal = await proposal_form(uow, values.get("line_id", ""), today())
        return render(
            request,
            "settlement/proposal.html",
            {"proposal": proposal, "errors": exc.errors, "values": values},
            status_code=422,
        )
    url = request.url_for("settlement.allocations").include_query_params(confirmed=saved.number)
    return RedirectResponse(str(url), status_code=303)


routes: list[BaseRoute] = [
    Route("/settlement/import", import_view, name="settlement.import"),
    Route("/settlement/import", import_upload, methods=["POST"], name="settlement.import_upload"),
    Route(
        "/settlement/proposals",
        proposal_confirm,
        methods=["POST"],
        name="settlement.proposal_confirm",
    ),
]
