"""Consent records (toestemming) and objections (bezwaar), per person, purpose and recipient.

A record names who consented (a family case member), for what purpose, to which recipient
(an organisation or a case role), how it was obtained, by whom, the explanation given, and
when it ends. Withdrawal is recorded, never a delete.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Date, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from keerpunt.platform.db import Base, utcnow
from keerpunt.platform.models import Case, CaseMember
from keerpunt.platform.uow import watch_disclosure_inputs


class Purpose(enum.StrEnum):
    REGISTRATION = "registration"  # aanmelden bij het triageteam
    INFORMATION_EXCHANGE = "information_exchange"  # informatie delen met genoemde partijen
    REPORT_SHARING = "report_sharing"  # verslag delen
    RET_REFERRAL = "ret_referral"  # doorverwijzing naar het RET
    THIRD_PARTY_INFO = "third_party_info"  # informatie van school, huisarts…


class Decision(enum.StrEnum):
    CONSENT = "consent"
    OBJECTION = "objection"


class ConsentRecord(Base):
    __tablename__ = "consent_record"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), index=True)
    subject_member_id: Mapped[int] = mapped_column(ForeignKey("case_member.id"))
    purpose: Mapped[str] = mapped_column(String(30))
    decision: Mapped[str] = mapped_column(String(10), default=Decision.CONSENT)
    # Recipient: one organisation, or a case role ("triage_member"), or None for "everyone at
    # the table for this case" (the least specific).
    recipient_org_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"))
    recipient_role: Mapped[str | None] = mapped_column(String(30))
    obtained_how: Mapped[str] = mapped_column(String(20))  # in_person | phone | written
    obtained_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    # What was explained to the family (transparency): free text, so personal data, encrypted
    # with the case key like every other family text.
    explanation_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    valid_until: Mapped[dt.date | None] = mapped_column()
    withdrawn_at: Mapped[dt.datetime | None] = mapped_column()
    withdrawn_by: Mapped[str | None] = mapped_column(String(100))


class YouthAloneException(Base):
    """A recorded legal exception (Jeugdwet 7.3.4 lid 3): for a youth of 12 to 15 the youth's
    own consent suffices, because withholding the help would plainly cause serious harm, or
    because the youth keeps wanting the help after the parents refused. Recorded with the
    ground, the reasoning (encrypted: it is about the youth), by whom and when; ending it is
    recorded, never a delete."""

    __tablename__ = "consent_youth_alone"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), index=True)
    ground: Mapped[str] = mapped_column(String(20))  # rules.YouthAloneGround
    reason_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column()
    ended_by: Mapped[str | None] = mapped_column(String(100))


class KpiRecord(Base):
    """What remains of a shredded case for the monitor (KPI's, seed 003 §4.1 and §5.4).

    Non-personal by construction: no case id, no pseudonym, no names or free text; dates only
    to the month and a random id, so a row cannot be traced back to the case it came from.
    Deleted itself once ``keep_until`` has passed (two years by default).
    """

    __tablename__ = "kpi_record"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # random, not in case order
    age_band: Mapped[str] = mapped_column(String(10))
    municipality_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"))
    referrer_org_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"))
    legal_basis: Mapped[str] = mapped_column(String(30))
    final_status: Mapped[str] = mapped_column(String(30))
    registered_month: Mapped[dt.date] = mapped_column(Date)  # first day of the month
    closed_month: Mapped[dt.date | None] = mapped_column(Date)
    arrangement_start_month: Mapped[dt.date | None] = mapped_column(Date)
    sessions: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(String(20))  # case_closed | pilot_ended
    keep_until: Mapped[dt.date] = mapped_column(Date, index=True)


class KpiArrangementLine(Base):
    """One line of help of a KPI record: provider, form, product, intensity and duration."""

    __tablename__ = "kpi_arrangement_line"

    id: Mapped[int] = mapped_column(primary_key=True)
    kpi_id: Mapped[str] = mapped_column(ForeignKey("kpi_record.id", ondelete="CASCADE"), index=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    help_form: Mapped[str] = mapped_column(String(20))
    product_code: Mapped[str] = mapped_column(String(10))
    minutes_per_week: Mapped[int] = mapped_column(Integer)
    days: Mapped[int] = mapped_column(Integer)  # planned duration, start to end inclusive


# What consent.service.disclosure reads of a case besides the clock: a change to any of it may
# change what someone sees of the case, so every unit of work that writes it tells the case's
# live screens (consent.changed) before it commits, whichever domain or command wrote it.
# The clock's part (a 12th or 16th birthday, a record running out) is consent.daily's.
watch_disclosure_inputs(ConsentRecord, lambda r: r.case_id)
watch_disclosure_inputs(YouthAloneException, lambda r: r.case_id)
watch_disclosure_inputs(
    CaseMember, lambda m: m.case_id, frozenset({"case_id", "role", "user_id", "removed_at"})
)
watch_disclosure_inputs(
    Case,
    lambda c: c.id,
    frozenset({"legal_basis", "birth_date_enc", "registered_by_id", "shredded_at"}),
)
