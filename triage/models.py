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
    """Who is invited to a triage session (a case member: professional or family), and for
    the triage team who attended and how long."""

    __tablename__ = "session_participant"
    __table_args__ = (UniqueConstraint("session_id", "member_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("triage_session.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("case_member.id"))
    # Attendance of a triage team member, confirmed by the chair at closing (presentielijst):
    # the time spent (0: not there; None: not confirmed), and the discipline and seconding
    # provider as they were that day, so the penvoerder reimburses the right provider at the
    # right rate even after the expert changes job or discipline.
    minutes_present: Mapped[int | None] = mapped_column(Integer)
    discipline: Mapped[str | None] = mapped_column(String(40))
    seconded_by_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"))


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


class BoundTo(enum.StrEnum):
    """Where a factor sits: in the child, in the family, or in the environment."""

    CHILD = "child"  # kindgebonden
    FAMILY = "family"  # gezinsgebonden
    ENVIRONMENT = "environment"  # omgevingsgebonden


class Factor(Base):
    """A factor of the explanatory analysis, in one life area.

    A factor imported from an earlier analysis starts as a draft (``draft``): its life area
    and kind may still be empty ("") until someone at the table structures it.
    """

    __tablename__ = "factor"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("triage_session.id"), index=True)
    life_area: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(20))
    bound_to: Mapped[str] = mapped_column(String(20), default="")
    draft: Mapped[bool] = mapped_column(Boolean, default=False)
    # "Niet over mij zonder mij": the family member who asked that this is only shown while
    # they are at the table (None: no such wish).
    private_to_member_id: Mapped[int | None] = mapped_column(ForeignKey("case_member.id"))
    text_enc: Mapped[bytes] = mapped_column(LargeBinary)
    # Entered while the author saw the case only under its pseudonym (anonymous discussion):
    # then it is non-identifying by agreement and everyone at the table may read it.
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)
    author: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Goal(Base):
    """A goal, in the youth's own words, tied to the desired perspective; SMART details
    (how we notice it works, by when) are optional."""

    __tablename__ = "goal"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("triage_session.id"), index=True)
    text_enc: Mapped[bytes] = mapped_column(LargeBinary)
    measure_enc: Mapped[bytes | None] = mapped_column(LargeBinary)  # meetbaar: how we notice
    target_date: Mapped[dt.date | None] = mapped_column(Date)  # tijdgebonden
    private_to_member_id: Mapped[int | None] = mapped_column(ForeignKey("case_member.id"))
    # Entered while the author saw the case only under its pseudonym (anonymous discussion):
    # then it is non-identifying by agreement and everyone at the table may read it.
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)
    author: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class FactorLink(Base):
    """Factor ``source`` keeps factor ``target`` going (houdt in stand)."""

    __tablename__ = "factor_link"
    __table_args__ = (UniqueConstraint("source_id", "target_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("triage_session.id"), index=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("factor.id"))
    target_id: Mapped[int] = mapped_column(ForeignKey("factor.id"))
    author: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class GoalFactor(Base):
    """A goal addresses a factor of the analysis."""

    __tablename__ = "goal_factor"

    goal_id: Mapped[int] = mapped_column(ForeignKey("goal.id"), primary_key=True)
    factor_id: Mapped[int] = mapped_column(ForeignKey("factor.id"), primary_key=True)


class SessionBoard(Base):
    """What the table shares besides its items: the step the chair has on screen, the
    desired perspective of the youth, and the four qualities of the analysis (a good
    verklarende analyse is volledig, eenvoudig, samenhangend en toetsbaar)."""

    __tablename__ = "session_board"

    session_id: Mapped[int] = mapped_column(ForeignKey("triage_session.id"), primary_key=True)
    on_screen_step: Mapped[int] = mapped_column(Integer, default=1)
    perspective_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    perspective_version: Mapped[int] = mapped_column(Integer, default=0)
    perspective_anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    # comma-separated ticked qualities: complete,simple,coherent,testable
    qualities: Mapped[str] = mapped_column(String(60), default="")


class StepNote(Base):
    """The family's own view on one step of the meeting (eigen inbreng), marked as theirs."""

    __tablename__ = "step_note"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("triage_session.id"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    text_enc: Mapped[bytes] = mapped_column(LargeBinary)
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    private_to_member_id: Mapped[int | None] = mapped_column(ForeignKey("case_member.id"))
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


# -- allocation when the tables don't agree (RET Rijnmond, seed 000) -------------------------
# Non-personal by design: providers, domains, turns and counts. The case appears by its id
# (shown as its pseudonym); free-text reasons are encrypted with the case key, so shredding
# the case removes them too.


class AllocationProvider(Base):
    """A contracted system provider in a contract lot (perceel): its domain, place in the
    rotation, expertise and offer. Data kept by the manager zorgbemiddeling."""

    __tablename__ = "allocation_provider"
    __table_args__ = (UniqueConstraint("lot", "organisation_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    lot: Mapped[str] = mapped_column(String(100))
    domain: Mapped[str] = mapped_column(String(10))  # allocation.Domain
    position: Mapped[int] = mapped_column(Integer)  # place in the domain's rotation
    expertise: Mapped[str] = mapped_column(String(500), default="")  # comma-separated
    min_age: Mapped[int] = mapped_column(Integer)
    max_age: Mapped[int] = mapped_column(Integer)
    locations: Mapped[str] = mapped_column(String(500), default="")  # comma-separated
    milieus: Mapped[str] = mapped_column(String(10), default="")  # "2", "3", "2,3" or ""
    contract_active: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AllocationRotation(Base):
    """The turn counter of one domain in one lot: the row that is locked (SELECT ... FOR
    UPDATE, and BEGIN IMMEDIATE on SQLite) while a turn is given."""

    __tablename__ = "allocation_rotation"
    __table_args__ = (UniqueConstraint("lot", "domain"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lot: Mapped[str] = mapped_column(String(100))
    domain: Mapped[str] = mapped_column(String(10))
    turn: Mapped[int] = mapped_column(Integer, default=0)


class AllocationRequest(Base):
    """A case handed to the manager zorgbemiddeling because a trigger fired (mandaatregeling),
    with what the case needs (no names: age, place, milieu, expertise, domain)."""

    __tablename__ = "allocation_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), index=True)
    lot: Mapped[str] = mapped_column(String(100))
    trigger_kind: Mapped[str] = mapped_column(String(30))  # allocation.TriggerKind
    trigger_since: Mapped[dt.date] = mapped_column(Date)
    domain: Mapped[str] = mapped_column(String(10))  # predominant domain
    age: Mapped[int | None] = mapped_column(Integer)  # None: needs not filled in yet
    location: Mapped[str] = mapped_column(String(100))
    milieu: Mapped[int | None] = mapped_column(Integer)
    expertise: Mapped[str] = mapped_column(String(500), default="")  # comma-separated
    continue_ids: Mapped[str] = mapped_column(String(200), default="")  # good past involvement
    not_again_ids: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | allocated
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    requested_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Allocation(Base):
    """The decision (toewijzing): the provider, the turn it took, whether the proposal was
    overridden and why, and the explanation as it was shown. A turn is given only once."""

    __tablename__ = "ret_allocation"
    __table_args__ = (UniqueConstraint("lot", "domain", "turn"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("allocation_request.id"), unique=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), index=True)
    lot: Mapped[str] = mapped_column(String(100))
    domain: Mapped[str] = mapped_column(String(10))
    turn: Mapped[int] = mapped_column(Integer)
    provider_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    proposed_provider_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"))
    overridden: Mapped[bool] = mapped_column(Boolean, default=False)
    reason_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    second_provider_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"))
    share_percent: Mapped[int] = mapped_column(Integer, default=100)  # binding split of effort
    explanation: Mapped[str] = mapped_column(String)  # JSON, non-personal
    decided_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    decided_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AllocationDispute(Base):
    """A provider disagrees with an allocation: the escalation ladder. The allocation stands
    while it runs."""

    __tablename__ = "allocation_dispute"

    id: Mapped[int] = mapped_column(primary_key=True)
    allocation_id: Mapped[int] = mapped_column(ForeignKey("ret_allocation.id"), index=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    level: Mapped[str] = mapped_column(String(30))  # allocation.LadderStep
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | resolved
    opened_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[dt.datetime | None] = mapped_column()


class DisputeStep(Base):
    """One step on the ladder: who recorded it, with whom it was discussed, why, when."""

    __tablename__ = "allocation_dispute_step"

    id: Mapped[int] = mapped_column(primary_key=True)
    dispute_id: Mapped[int] = mapped_column(ForeignKey("allocation_dispute.id"), index=True)
    level: Mapped[str] = mapped_column(String(30))
    action: Mapped[str] = mapped_column(String(20))  # opened | escalated | resolved
    # With whom it was discussed (professionals' names), encrypted with the case key like the
    # note. ``spoke_with`` is the plain column of steps written before that: no longer written,
    # read only when ``spoke_with_enc`` is empty, and blanked when the case is shredded.
    spoke_with: Mapped[str] = mapped_column(String(300), default="")
    spoke_with_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    note_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


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
