"""The vault: case data keys, wrapped by the master keys; rotation and crypto-shredding."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Table, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from keerpunt.platform.crypto import CaseCipher, KeyRing, bsn_index, new_data_key
from keerpunt.platform.db import utcnow
from keerpunt.platform.models import Case, CaseKey

__all__ = ["Vault", "case_rows", "personal_columns"]

CASE_TABLE = "case_file"


def personal_columns(table: Table) -> list[str]:
    """The columns of a table that hold family data: by convention every ``*_enc`` column."""
    return [c.name for c in table.columns if c.name.endswith("_enc")]


def case_rows(table: Table, case_id: int, _seen: frozenset[str] = frozenset()) -> Any:
    """A condition selecting the rows of ``table`` that belong to one case, found by following
    foreign keys to ``case_file`` (directly, or through e.g. a session or a case member).
    A row belongs to the case by ANY such path (a factor by its session, and also by the
    member it is kept for), so all paths are joined with OR. None when there is none."""
    if table.name == CASE_TABLE:
        return table.c.id == case_id
    seen = _seen | {table.name}
    found: list[ColumnElement[bool]] = []
    for fk in sorted(table.foreign_keys, key=lambda k: (k.parent.name, k.target_fullname)):
        target = fk.column.table
        if target.name == CASE_TABLE:
            found.append(fk.parent == case_id)
            continue
        if not isinstance(target, Table) or target.name in seen:
            continue
        inner: ColumnElement[bool] | None = case_rows(target, case_id, seen)
        if inner is not None:
            found.append(fk.parent.in_(select(fk.column).where(inner)))
    if not found:
        return None
    return found[0] if len(found) == 1 else or_(*found)


class Vault:
    def __init__(self, keyring: KeyRing, bsn_index_key: bytes) -> None:
        self.keyring = keyring
        self._bsn_key = bsn_index_key

    async def create_case_key(self, db: AsyncSession, case_id: int) -> CaseCipher:
        dek = new_data_key()
        version, wrapped = self.keyring.wrap(dek, case_id=case_id)
        db.add(CaseKey(case_id=case_id, kek_version=version, wrapped_dek=wrapped))
        await db.flush()
        return CaseCipher(case_id, dek)

    async def cipher(self, db: AsyncSession, case_id: int) -> CaseCipher:
        """The case's cipher; a shredded case gets a cipher that refuses to decrypt."""
        key = await db.get(CaseKey, case_id)
        if key is None:
            return CaseCipher(case_id, None)
        return CaseCipher(
            case_id, self.keyring.unwrap(key.kek_version, key.wrapped_dek, case_id=case_id)
        )

    async def shred(self, db: AsyncSession, case_id: int) -> None:
        """Crypto-shredding: delete the case key, so its encrypted personal data is unreadable,
        and empty every ``*_enc`` column of the case's rows in every table too, so not even the
        ciphertext stays behind (defence in depth against a leaked old key or backup)."""
        key = await db.get(CaseKey, case_id)
        if key is not None:
            await db.delete(key)
            await db.flush()
        from keerpunt.platform.schema import metadata  # every domain's tables, not just loaded ones

        for table in metadata.sorted_tables:
            columns = personal_columns(table)
            where = case_rows(table, case_id) if columns else None
            if where is None:
                continue
            # Nullable columns become NULL; a required one gets the empty value, which no
            # cipher accepts, so readers see "shredded" rather than a text.
            values = {c: None if table.c[c].nullable else b"" for c in columns}
            await db.execute(update(table).where(where).values(**values))
        await db.execute(
            update(Case).where(Case.id == case_id).values(shredded_at=utcnow(), bsn_hash=None)
        )

    async def rotate(self, db: AsyncSession) -> int:
        """Re-wrap every case key under the current master key; returns how many changed."""
        changed = 0
        keys = (await db.scalars(select(CaseKey))).all()
        for key in keys:
            if key.kek_version == self.keyring.current.version:
                continue
            key.kek_version, key.wrapped_dek = self.keyring.rewrap(
                key.kek_version, key.wrapped_dek, case_id=key.case_id
            )
            changed += 1
        return changed

    def bsn_hash(self, bsn: str) -> str:
        return bsn_index(self._bsn_key, bsn)
