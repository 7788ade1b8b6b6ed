"""Triage tables: the registration (aanmelding) with its entry check, triage sessions with
their participants, and what the table builds: factors of the explanatory analysis, goals,
and arrangement lines. Free text about the family is encrypted with the case key."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Boolean, Date, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from keerpunt.platform.db import Base, utcnow


class EntryCheck(Base):
    """The five questions of the toetsingskader, answered at registration (all must be YES)."""

    __tablename__ = "entry_check"

    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), primary_key=True)
    under_18: Mapped[bool] = mapped_column(Boolean)
    multiple_expertises: Mapped[bool] = mapped_column(Boolean)
    all_life_areas: Mapped[bool] = mapped_column(Boolean)
    placement_threat: Mapped[bool] = mapped_column(Boolean)
    no_other_perspective: Mapped[bool] = mapped_column(Boolean)
    not_a_crisis: Mapped[bool] = mapped_column(Boolean)
    answered_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SessionStatus(enum.StrEnum):
    PLANNED = "planned"
    OPEN = "open"
    CLOSED = "closed"


class TriageSession(Base):
    """A triage meeting (triage-bespreking) about one case; also a real-time room."""

    __tablename__ = "triage_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), index=True)
    scheduled_at: Mapped[dt.datetime] = mapped_column()
    status: Mapped[str] = mapped_column(String(20), default=SessionStatus.PLANNED)
    planned_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    closed_at: Mapped[dt.datetime | None] = mapped_column()
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    @property
    def room(self) -> str:
        return f"triage:{self.id}"


class SessionParticipant(Base):
    """Who is invited to a triage session (a case member: professional or family)."""

    __tablename__ = "session_participant"
    __table_args__ = (UniqueConstraint("session_id", "member_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("triage_session.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("case_member.id"))


class LifeArea(enum.StrEnum):
    SCHOOL = "school"
    HOME = "home"
    FREE_TIME = "free_time"
    HEALTH = "health"
    NETWORK = "network"
    FINANCES = "finances"


class FactorKind(enum.StrEnum):
    """The four Ps of the explanatory analysis (verklarende analyse)."""

    PREDISPOSING = "predisposing"  # voorbeschikkend
    PRECIPITATING = "precipitating"  # uitlokkend
    PERPETUATING = "perpetuating"  # in stand houdend
    PROTECTIVE = "protective"  # beschermend


class Factor(Base):
    """A factor of the explanatory analysis, in one life area."""

    __tablename__ = "factor"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("triage_session.id"), index=True)
    life_area: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(20))
    text_enc: Mapped[bytes] = mapped_column(LargeBinary)
    # Entered while the author saw the case only under its pseudonym (anonymous discussion):
    # then it is non-identifying by agreement and everyone at the table may read it.
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)
    author: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Goal(Base):
    """A goal, in the youth's own words."""

    __tablename__ = "goal"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("triage_session.id"), index=True)
    text_enc: Mapped[bytes] = mapped_column(LargeBinary)
    # Entered while the author saw the case only under its pseudonym (anonymous discussion):
    # then it is non-identifying by agreement and everyone at the table may read it.
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)
    author: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class HelpForm(enum.StrEnum):
    AMBULANT = "ambulant"
    DAY_TREATMENT = "day_treatment"  # "stoel"
    SHORT_STAY = "short_stay"  # bed
    FOSTER_CARE = "foster_care"


class ArrangementLine(Base):
    """One line of the arrangement: which provider delivers which help, how much.

    Non-personal by design (provider, product, hours), so finance can use it without
    touching family data.
    """

    __tablename__ = "arrangement_line"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("triage_session.id"), index=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    product_code: Mapped[str] = mapped_column(String(10))
    help_form: Mapped[str] = mapped_column(String(20), default=HelpForm.AMBULANT)
    minutes_per_week: Mapped[int] = mapped_column(Integer)  # hours are entered, minutes kept
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date] = mapped_column(Date)
    version: Mapped[int] = mapped_column(Integer, default=1)
    author: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CaseTransition(Base):
    """One step of a case's lifecycle (from, to, who, why, when); see triage/lifecycle.py.

    The reason may be personal ("moeder opgenomen"), so it is encrypted with the case key.
    """

    __tablename__ = "case_transition"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), index=True)
    from_status: Mapped[str] = mapped_column(String(30))
    to_status: Mapped[str] = mapped_column(String(30))
    actor: Mapped[str] = mapped_column(String(100))  # "user:12", "member:7"
    flow: Mapped[str | None] = mapped_column(String(30))  # set when a platform flow took it
    reason_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
