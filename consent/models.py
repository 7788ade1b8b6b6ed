"""Consent records (toestemming) and objections (bezwaar), per person, purpose and recipient.

A record names who consented (a family case member), for what purpose, to which recipient
(an organisation or a case role), how it was obtained, by whom, the explanation given, and
when it ends. Withdrawal is recorded, never a delete.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import ForeignKey, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from keerpunt.platform.db import Base, utcnow


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
    explanation: Mapped[str] = mapped_column(Text)  # what was explained (transparency)
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
