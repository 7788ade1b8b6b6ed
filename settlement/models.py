"""Settlement tables: contract tariffs (contracttarieven) per provider and product.

A tariff that changes over time (indexation, *indexering*) is a new row with a later
``valid_from``; rows are never edited to a new price, so an old quarter is always priced with
the tariff that was valid then. Periods of one provider and product never overlap (checked in
:func:`keerpunt.settlement.service.add_contract`, under a lock on the provider row).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from keerpunt.platform.db import Base, utcnow
from keerpunt.settlement.rules import UNIT_CODES


class Contract(Base):
    """The tariff a provider gets for one product (GiZ product category + code) in a period.

    ``tariff_cents`` is the price of one ``unit`` in euro cents; ``valid_to`` is inclusive and
    empty for "until further notice".
    """

    __tablename__ = "contract"
    __table_args__ = (
        CheckConstraint("tariff_cents >= 0", name="tariff_not_negative"),
        CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="period_order"),
        CheckConstraint(
            "unit IN (" + ", ".join(f"'{u}'" for u in UNIT_CODES) + ")", name="unit_known"
        ),
        Index("ix_contract_provider_product", "provider_id", "product_code", "valid_from"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    product_category: Mapped[str] = mapped_column(String(2))  # productcategorie, e.g. "45"
    product_code: Mapped[str] = mapped_column(String(5))  # productcode, e.g. "45A52"
    description: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str] = mapped_column(String(2))  # iJw eenheid, e.g. "04" hour
    tariff_cents: Mapped[int] = mapped_column(Integer)
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_to: Mapped[dt.date | None] = mapped_column(Date)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
