"""The vault: case data keys, wrapped by the master keys; rotation and crypto-shredding."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from keerpunt.platform.crypto import CaseCipher, KeyRing, bsn_index, new_data_key
from keerpunt.platform.db import utcnow
from keerpunt.platform.models import Case, CaseKey

__all__ = ["Vault"]


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
        """Crypto-shredding: delete the case key; its encrypted personal data is unreadable."""
        key = await db.get(CaseKey, case_id)
        if key is not None:
            await db.delete(key)
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
