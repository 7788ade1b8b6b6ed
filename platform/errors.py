"""Domain errors: raised by services, mapped to a response at the edge.

``message`` is a Dutch message id (translated at the edge) that a user understands;
``status_code`` is the HTTP status the edge uses.
"""

from __future__ import annotations

from keerpunt.platform.i18n import N_


class DomainError(Exception):
    status_code = 400
    message = N_("Dit kan niet.")

    def __init__(self, message: str | None = None, **params: object) -> None:
        if message is not None:
            self.message = message
        self.params = params
        super().__init__(self.message)


class NotAllowed(DomainError):
    status_code = 403
    message = N_("U mag dit niet doen of inzien.")


class NotFound(DomainError):
    status_code = 404
    message = N_("Dit bestaat niet (meer), of u mag het niet zien.")


class InvalidInput(DomainError):
    """Bad input: ``errors`` maps field name to a Dutch message id."""

    status_code = 422
    message = N_("Niet alles is goed ingevuld. Kijk naar de velden met een melding.")

    def __init__(self, errors: dict[str, str], message: str | None = None) -> None:
        super().__init__(message)
        self.errors = errors


class StaleVersion(DomainError):
    """Someone else changed the item since the editor loaded it."""

    status_code = 409
    message = N_("Iemand anders heeft dit intussen veranderd. Uw tekst staat hieronder nog.")
