"""Platform tables: organisations, people, cases with their keys and per-case roles, login
sessions and invitations, and the audit chain.

Personal data of a family lives only in ``*_enc`` columns, encrypted with the case's data key
(see :mod:`keerpunt.platform.crypto`).
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from keerpunt.platform.db import Base, utcnow


class OrgKind(enum.StrEnum):
    PROVIDER = "provider"  # zorgaanbieder, has an AGB code
    MUNICIPALITY = "municipality"  # gemeente, has a CBS code
    OTHER = "other"  # school, GI, GP practice…


class Organisation(Base):
    """An organisation: provider (AGB code), municipality (CBS code) or other party."""

    __tablename__ = "organisation"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    agb_code: Mapped[str | None] = mapped_column(String(8))
    cbs_code: Mapped[str | None] = mapped_column(String(4))
    is_penvoerder: Mapped[bool] = mapped_column(Boolean, default=False)
    region: Mapped[str | None] = mapped_column(String(100))
    # OpenID Connect: every organisation logs its own staff in through its own issuer.
    oidc_issuer: Mapped[str | None] = mapped_column(String(500))
    oidc_client_id: Mapped[str | None] = mapped_column(String(200))


class Discipline(enum.StrEnum):
    """Discipline of a triage team member (triageteam-lid)."""

    REGIEBEHANDELAAR = "regiebehandelaar"
    SYSTEEMBEHANDELAAR = "systeembehandelaar"
    GEZINSBEHANDELAAR = "gezinsbehandelaar"
    GEDRAGSWETENSCHAPPER = "gedragswetenschapper"
    ERVARINGSDESKUNDIGE = "ervaringsdeskundige"
    ONDERWIJSCONSULENT = "onderwijsconsulent"
    SOCIAAL_DOMEIN = "sociaal_domein"


class StaffRole(enum.StrEnum):
    """What a professional may do across cases (per-case roles live in CaseMember)."""

    REGISTRAR = "registrar"  # aanmelder: lokale toegang, GI, huisarts
    COORDINATOR = "coordinator"  # coördinator / projectleider
    TRIAGE_MEMBER = "triage_member"  # triageteam-lid
    FINANCE = "finance"  # finance staff of the penvoerder
    ALLOCATION_MANAGER = "allocation_manager"  # manager zorgbemiddeling (RET)
    FUNDER = "funder"  # gemeente / financier: sees the quarterly monitor (aggregates only)


class User(Base):
    """A professional with a login through their organisation's OpenID Connect provider."""

    __tablename__ = "user_account"
    __table_args__ = (UniqueConstraint("organisation_id", "oidc_subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    display_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320), unique=True)
    oidc_subject: Mapped[str | None] = mapped_column(String(255))
    roles: Mapped[str] = mapped_column(String(200), default="")  # comma-separated StaffRole
    discipline: Mapped[str | None] = mapped_column(String(40))
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    organisation: Mapped[Organisation] = relationship(lazy="joined")

    @property
    def role_set(self) -> frozenset[str]:
        return frozenset(r for r in self.roles.split(",") if r)


class Case(Base):
    """A case (casus). Identifying data is encrypted; the pseudonym is stable, non-identifying."""

    __tablename__ = "case_file"

    id: Mapped[int] = mapped_column(primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(40), unique=True)
    status: Mapped[str] = mapped_column(String(30), default="registered")
    municipality_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"))
    registered_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    registered_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    age_band: Mapped[str] = mapped_column(String(10))  # non-identifying, e.g. "12-15"
    # "consent", or the legal order under which no consent is needed (consent.rules.LegalBasis)
    legal_basis: Mapped[str] = mapped_column(String(30), default="consent")
    youth_name_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    birth_date_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    bsn_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    bsn_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    situation_enc: Mapped[bytes | None] = mapped_column(LargeBinary)  # free text about the family
    # Shown without consent too (anonieme bespreking): written by the registrar as anonymous,
    # still encrypted at rest so shredding removes it.
    anonymous_summary_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    domain: Mapped[str | None] = mapped_column(String(10))  # jo | ggz | lvb (voorliggend domein)
    # When the case ended (afgesloten): the retention period runs from here (consent.retention).
    closed_at: Mapped[dt.datetime | None] = mapped_column()
    shredded_at: Mapped[dt.datetime | None] = mapped_column()


class CaseKey(Base):
    """The case's data key, wrapped by a master key. Deleting this row shreds the case."""

    __tablename__ = "case_key"

    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), primary_key=True)
    kek_version: Mapped[str] = mapped_column(String(20))
    wrapped_dek: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CaseRole(enum.StrEnum):
    """Roles per case (DOMAIN.md "The people"); one person may hold several."""

    YOUTH = "youth"  # jeugdige
    PARENT = "parent"  # ouder met gezag
    GUARDIAN = "guardian"  # voogd
    JIM = "jim"  # Jouw Ingebrachte Mentor
    LOCAL_TEAM = "local_team"  # lokale toegang / aanmelder
    COORDINATOR = "coordinator"
    TRIAGE_MEMBER = "triage_member"
    SCHOOL = "school"
    CHILD_PROTECTION = "child_protection"  # jeugdbeschermer (GI)
    CARE_WORKER = "care_worker"  # betrokken hulpverlener
    PROCESREGISSEUR = "procesregisseur"

    @property
    def is_family(self) -> bool:
        return self in FAMILY_ROLES


FAMILY_ROLES = frozenset({CaseRole.YOUTH, CaseRole.PARENT, CaseRole.GUARDIAN, CaseRole.JIM})


class CaseMember(Base):
    """A person at the table for one case: a professional (user) or a family member / JIM.

    Family members have no account: they log in through an invitation. Their name is personal
    data of the case and is encrypted with the case key.
    """

    __tablename__ = "case_member"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), index=True)
    role: Mapped[str] = mapped_column(String(30))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    name_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    added_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[dt.datetime | None] = mapped_column()

    user: Mapped[User | None] = relationship(lazy="joined")


class Invitation(Base):
    """A per-case invitation: a link plus a one-time code, expiring and revocable.

    Only hashes are stored; the link token and the code are shown once to the person who
    sends them (by two different channels).
    """

    __tablename__ = "invitation"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("case_member.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    used_at: Mapped[dt.datetime | None] = mapped_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column()
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)


class LoginSession(Base):
    """A server-side login session behind the signed cookie, so logout and revocation work."""

    __tablename__ = "login_session"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the cookie token
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("case_member.id"))
    invitation_id: Mapped[int | None] = mapped_column(ForeignKey("invitation.id"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    locale: Mapped[str] = mapped_column(String(5), default="nl")
    how: Mapped[str] = mapped_column(String(20))  # oidc | invitation | demo
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column()


class AuditEntry(Base):
    """One row of the append-only audit log; ``hash`` chains it to the row before."""

    __tablename__ = "audit_entry"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    at: Mapped[dt.datetime] = mapped_column()
    actor: Mapped[str] = mapped_column(String(100))  # "user:12", "member:7", "system"
    role: Mapped[str] = mapped_column(String(40))
    organisation_id: Mapped[int | None] = mapped_column(Integer)
    case_id: Mapped[int | None] = mapped_column(Integer, index=True)
    action: Mapped[str] = mapped_column(String(60))
    purpose: Mapped[str] = mapped_column(String(60))
    detail: Mapped[str] = mapped_column(Text, default="")
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The end of the audit chain: one row, updated with each append, locks the append."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


class RoomCounter(Base):
    """The last sequence number per real-time room (e.g. one triage session)."""

    __tablename__ = "room_counter"

    room: Mapped[str] = mapped_column(String(80), primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)


class RoomEvent(Base):
    """A change in a room, saved in the same transaction as the change itself.

    It names what changed, never personal data; every viewer gets it rendered for them.
    The table is also the live relay's outbox: ``origin`` names the hub of the process that
    saved the event (that hub publishes it itself, right after the commit); every other server
    process passes it on to its own screens (``platform.relay``). NULL: saved outside a
    runtime's unit of work, so every server passes it on.
    """

    __tablename__ = "room_event"
    __table_args__ = (UniqueConstraint("room", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    room: Mapped[str] = mapped_column(String(80))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(40))  # e.g. "factor.created"
    subject_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(100))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    origin: Mapped[str | None] = mapped_column(String(64))
