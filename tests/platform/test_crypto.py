"""Encryption at rest, key rotation, BSN index and crypto-shredding."""

from __future__ import annotations

import base64
import os

import pytest
from sqlalchemy import select, text

from keerpunt.platform.crypto import (
    CaseCipher,
    CryptoError,
    InvalidBSN,
    KeyRing,
    KeyShredded,
    MasterKey,
    new_data_key,
    normalise_bsn,
)
from keerpunt.platform.models import Case, CaseKey
from keerpunt.platform.runtime import Runtime
from keerpunt.platform.vault import Vault
from tests.triage.factories import build_world

pytestmark = pytest.mark.anyio


def test_ciphertext_is_bound_to_case_and_field() -> None:
    dek = new_data_key()
    blob = CaseCipher(1, dek).encrypt("case.youth_name", "Sem")
    assert CaseCipher(1, dek).decrypt("case.youth_name", blob) == "Sem"
    with pytest.raises(CryptoError):
        CaseCipher(2, dek).decrypt("case.youth_name", blob)  # copied into another case
    with pytest.raises(CryptoError):
        CaseCipher(1, dek).decrypt("case.situation", blob)  # copied into another field


def test_rotation_rewraps_under_the_new_master_key() -> None:
    old = KeyRing([MasterKey("v1", os.urandom(32))])
    dek = new_data_key()
    version, wrapped = old.wrap(dek, case_id=9)
    new = KeyRing([MasterKey("v2", os.urandom(32)), old.current])
    v2, rewrapped = new.rewrap(version, wrapped, case_id=9)
    assert v2 == "v2"
    assert KeyRing([new.current]).unwrap(v2, rewrapped, case_id=9) == dek


@pytest.mark.parametrize("raw", ["111222333", "111.222.333", "11122233 3"])
def test_valid_bsn(raw: str) -> None:
    assert normalise_bsn(raw) == "111222333"


@pytest.mark.parametrize("raw", ["123456789", "12345", "abcdefghi", "000000000"])
def test_invalid_bsn(raw: str) -> None:
    with pytest.raises(InvalidBSN):
        normalise_bsn(raw)


async def test_personal_data_is_never_stored_in_clear_and_shredding_destroys_it(
    runtime: Runtime,
) -> None:
    world = await build_world(runtime)
    async with runtime.sessionmaker() as db:
        case = await db.get(Case, world.case_id)
        assert case is not None
        assert case.bsn_hash == runtime.vault.bsn_hash("111222333")  # findable by keyed hash
        rows = []
        for table in ("case_file", "case_member", "case_key", "audit_entry", "consent_record"):
            rows += (await db.execute(text(f"SELECT * FROM {table}"))).all()
        dump = " ".join(str(row) for row in rows)
    for secret in ("Sem Canarie", "Ma Canarie", "Oom Kees", "111222333", "Geheim-verhaal"):
        assert secret not in dump

    async with runtime.sessionmaker() as db, db.begin():
        await runtime.vault.shred(db, world.case_id)
    async with runtime.sessionmaker() as db:
        assert await db.scalar(select(CaseKey).where(CaseKey.case_id == world.case_id)) is None
        cipher = await runtime.vault.cipher(db, world.case_id)
        case = await db.get(Case, world.case_id)
        assert case is not None and case.bsn_hash is None
        assert case.youth_name_enc is None  # emptied as well, not only unreadable
        with pytest.raises(KeyShredded):  # and a copy kept elsewhere cannot be read either
            cipher.decrypt("case.youth_name", b"\x01" + bytes(40))


async def test_a_vault_with_the_wrong_master_key_cannot_read(runtime: Runtime) -> None:
    world = await build_world(runtime)
    thief = Vault(KeyRing.parse("t1:" + base64.urlsafe_b64encode(os.urandom(32)).decode()), b"x")
    async with runtime.sessionmaker() as db:
        with pytest.raises(CryptoError):
            await thief.cipher(db, world.case_id)


async def test_rotating_the_master_key_keeps_every_case_readable(runtime: Runtime) -> None:
    world = await build_world(runtime)
    old = runtime.vault.keyring.current
    new_ring = KeyRing([MasterKey("t2", os.urandom(32)), old])
    rotated = Vault(new_ring, b"x")
    async with runtime.sessionmaker() as db, db.begin():
        assert await rotated.rotate(db) == 1
    only_new = Vault(KeyRing([new_ring.current]), b"x")  # the old key can now be retired
    async with runtime.sessionmaker() as db:
        case = await db.get(Case, world.case_id)
        assert case is not None
        cipher = await only_new.cipher(db, world.case_id)
        assert cipher.decrypt("case.youth_name", case.youth_name_enc) == "Sem Canarie"
