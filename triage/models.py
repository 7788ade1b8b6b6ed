"""Triage tables: the registration (aanmelding) with its entry check, triage sessions with
their participants, and what the table builds: factors of the explanatory analysis, goals,
and arrangement lines. Free text about the family is encrypted with the case key."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
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
    # The full range is data: see keerpunt.triage.arrangement.HELP_FORMS.


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
    # Intensity as stated: unit "hour" (then minutes_per_week is exact), "dagdeel" or "etmaal"
    # (then units_per_week counts them and minutes_per_week is their time equivalent).
    intensity_unit: Mapped[str] = mapped_column(String(10), default="hour")
    units_per_week: Mapped[int | None] = mapped_column(Integer)
    # The provider's stated share (aandeel): what help it will give, in its own words.
    share_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Written while the author saw the case only under its pseudonym: non-identifying by
    # agreement, so everyone at the table may read it (as with factors and goals).
    share_anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    # Which version of the arrangement this line belongs to (see Arrangement.version).
    revision: Mapped[int] = mapped_column(Integer, default=1)
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date] = mapped_column(Date)
    version: Mapped[int] = mapped_column(Integer, default=1)
    author: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Arrangement(Base):
    """The arrangement of a session as a whole: its version, whether the chair has recorded
    the split of effort (inzetverdeling) as binding, and the designated procesregisseur.

    Once agreed, its lines change only by a new version (the old lines stay as history)."""

    __tablename__ = "arrangement"

    session_id: Mapped[int] = mapped_column(ForeignKey("triage_session.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    agreed_at: Mapped[dt.datetime | None] = mapped_column()
    agreed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    procesregisseur_org_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"))
    procesregisseur_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))


class ActivityStatus(enum.StrEnum):
    OPEN = "open"
    UNDER_WAY = "under_way"  # loopt
    DONE = "done"
    CANCELLED = "cancelled"


class PlanActivity(Base):
    """An activity of the plan (plan van aanpak): who does what, when. The procesregisseur
    keeps its status up to date after the meeting."""

    __tablename__ = "plan_activity"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("triage_session.id"), index=True)
    who_enc: Mapped[bytes] = mapped_column(LargeBinary)
    what_enc: Mapped[bytes] = mapped_column(LargeBinary)
    due_date: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20), default=ActivityStatus.OPEN)
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)
    author: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PlanAgreement(Base):
    """The plan's agreements in free text: how parties inform each other, what the
    municipality does, and the crisis plan (what to do in a crisis)."""

    __tablename__ = "plan_agreement"
    __table_args__ = (UniqueConstraint("session_id", "topic"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("triage_session.id"), index=True)
    topic: Mapped[str] = mapped_column(String(20))  # informing | municipality | crisis
    text_enc: Mapped[bytes] = mapped_column(LargeBinary)
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)
    author: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Report(Base):
    """The report (verslag) of a closed session. ``public_id`` is the unguessable id used in
    its address; reading it is still authorised and audited every time."""

    __tablename__ = "report"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("triage_session.id"), unique=True)
    public_id: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
