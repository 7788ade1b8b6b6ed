"""Who is acting: the logged-in professional or family member, as domain code sees them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import inspect

if TYPE_CHECKING:
    from keerpunt.platform.models import CaseMember, User


@dataclass(frozen=True)
class Principal:
    """The viewer/actor of a request. Domain services take this, never the HTTP request.

    A professional has ``user_id`` and ``organisation_id``; a family member or JIM has
    ``member_id`` and ``case_id`` (their invitation is for one case only).
    """

    session_id: str
    display_name: str
    user_id: int | None = None
    organisation_id: int | None = None
    staff_roles: frozenset[str] = frozenset()
    discipline: str | None = None
    member_id: int | None = None
    case_id: int | None = None  # family members: the one case they were invited to
    member_role: str | None = None  # family members: youth / parent / guardian / jim
    locale: str = "nl"
    csrf_token: str = ""
    # An organisation's own system calling the JSON API with a bearer token (no person).
    api_token_id: int | None = None
    # Professionals: their organisation's kind (provider, municipality, other) and whether it
    # is the penvoerder, read with the user: what the menu offers (each page's own check
    # reads the organisation again).
    organisation_kind: str | None = None
    at_penvoerder: bool = False

    @property
    def is_staff(self) -> bool:
        return self.user_id is not None

    @property
    def actor(self) -> str:
        if self.api_token_id is not None:
            return f"api-token:{self.api_token_id}"
        return f"user:{self.user_id}" if self.user_id is not None else f"member:{self.member_id}"

    @property
    def role_label(self) -> str:
        """Main role for the audit log."""
        if self.api_token_id is not None:
            return "api"
        if self.member_role:
            return self.member_role
        return ",".join(sorted(self.staff_roles)) or "staff"

    def has(self, role: str) -> bool:
        return role in self.staff_roles


def staff_principal(
    user: User, *, session_id: str = "", locale: str = "nl", csrf_token: str = ""
) -> Principal:
    """The principal of a professional (also for acting outside a request: CLI, demo)."""
    # The organisation comes with the user when it is read from the database (joined); a
    # user object made in code does not load it here (no query from a plain function).
    org = None if "organisation" in inspect(user).unloaded else user.organisation
    return Principal(
        session_id=session_id,
        display_name=user.display_name,
        user_id=user.id,
        organisation_id=user.organisation_id,
        staff_roles=user.role_set,
        discipline=user.discipline,
        locale=locale,
        csrf_token=csrf_token,
        organisation_kind=org.kind if org is not None else None,
        at_penvoerder=bool(org is not None and org.is_penvoerder),
    )


def family_principal(
    member: CaseMember,
    *,
    display_name: str = "",
    session_id: str = "",
    locale: str = "nl",
    csrf_token: str = "",
) -> Principal:
    """The principal of a family member or JIM: bound to the one case they were invited to."""
    return Principal(
        session_id=session_id,
        display_name=display_name,
        member_id=member.id,
        case_id=member.case_id,
        member_role=member.role,
        locale=locale,
        csrf_token=csrf_token,
    )


SYSTEM = Principal(session_id="", display_name="Keerpunt (systeem)")
