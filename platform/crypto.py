"""Encryption of personal data at rest (envelope encryption with AES-GCM).

Each case has its own data key (DEK). The DEK is stored only wrapped by a master key (KEK) that
carries a version, so master keys can be rotated by re-wrapping the DEKs, never touching data.
Deleting a case's wrapped DEK makes all its personal data unreadable: crypto-shredding.
The BSN is never stored in clear: it is encrypted like other personal data and findable only
through a keyed hash (HMAC-SHA256) under a separate index key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keerpunt.platform.i18n import N_

NONCE_BYTES = 12
_FORMAT = b"\x01"  # ciphertext layout version: 1 = AES-256-GCM, 12-byte nonce prefix


class CryptoError(Exception):
    """Data could not be decrypted: wrong key, tampered data, or a shredded case."""


class KeyShredded(CryptoError):
    """The case key was destroyed (crypto-shredding): its personal data is gone for good."""


@dataclass(frozen=True)
class MasterKey:
    version: str
    key: bytes


class KeyRing:
    """The master keys. The first is current (wraps new DEKs); older ones only unwrap."""

    def __init__(self, keys: list[MasterKey]) -> None:
        if not keys:
            raise ValueError("at least one master key is needed")
        for k in keys:
            if len(k.key) != 32:
                raise ValueError(f"master key {k.version} must be 32 bytes")
        self._keys = {k.version: k for k in keys}
        self.current = keys[0]

    @classmethod
    def parse(cls, spec: str) -> KeyRing:
        """Parse ``"v2:<base64>,v1:<base64>"`` (first is current)."""
        keys = []
        for part in filter(None, (p.strip() for p in spec.split(","))):
            version, _, encoded = part.partition(":")
            if not version or not encoded:
                raise ValueError("master keys look like 'v1:<base64 of 32 bytes>'")
            keys.append(MasterKey(version, base64.urlsafe_b64decode(encoded)))
        return cls(keys)

    def wrap(self, dek: bytes, *, case_id: int) -> tuple[str, bytes]:
        """Wrap a data key for a case under the current master key."""
        return self.current.version, _seal(self.current.key, dek, _dek_aad(case_id))

    def unwrap(self, version: str, wrapped: bytes, *, case_id: int) -> bytes:
        try:
            key = self._keys[version]
        except KeyError:
            raise CryptoError(f"master key {version} is not configured") from None
        return _open(key.key, wrapped, _dek_aad(case_id))

    def rewrap(self, version: str, wrapped: bytes, *, case_id: int) -> tuple[str, bytes]:
        """Re-wrap a data key under the current master key (rotation)."""
        return self.wrap(self.unwrap(version, wrapped, case_id=case_id), case_id=case_id)


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


class CaseCipher:
    """Encrypts and decrypts the personal fields of one case with its data key.

    The associated data binds each ciphertext to its case and field, so a value copied into
    another row or another case fails to decrypt instead of leaking.
    """

    def __init__(self, case_id: int, dek: bytes | None) -> None:
        self.case_id = case_id
        self._dek = dek

    @property
    def shredded(self) -> bool:
        return self._dek is None

    def encrypt(self, field: str, plaintext: str | None) -> bytes | None:
        if plaintext is None:
            return None
        if self._dek is None:
            raise KeyShredded(f"case {self.case_id} was shredded; nothing can be stored")
        return _seal(self._dek, plaintext.encode("utf-8"), self._aad(field))

    def decrypt(self, field: str, ciphertext: bytes | None) -> str | None:
        if ciphertext is None:
            return None
        if self._dek is None:
            raise KeyShredded(f"case {self.case_id} was shredded")
        return _open(self._dek, ciphertext, self._aad(field)).decode("utf-8")

    def _aad(self, field: str) -> bytes:
        return f"keerpunt:case:{self.case_id}:{field}".encode()


def _dek_aad(case_id: int) -> bytes:
    return f"keerpunt:dek:{case_id}".encode()


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return _FORMAT + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, blob: bytes, aad: bytes) -> bytes:
    if len(blob) < 1 + NONCE_BYTES + 16 or blob[:1] != _FORMAT:
        raise CryptoError("not a Keerpunt ciphertext")
    nonce, body = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
    try:
        return AESGCM(key).decrypt(nonce, body, aad)
    except InvalidTag:
        raise CryptoError("ciphertext does not match its key or context") from None


_BSN_RE = re.compile(r"^\d{9}$")


class InvalidBSN(ValueError):
    """Not a valid burgerservicenummer (nine digits passing the elfproef)."""


def normalise_bsn(raw: str) -> str:
    """Return the 9-digit BSN or raise :class:`InvalidBSN` (elfproef, the eleven test)."""
    digits = re.sub(r"[\s.\-]", "", raw)
    if len(digits) == 8:
        digits = "0" + digits
    if not _BSN_RE.match(digits):
        raise InvalidBSN(N_("Een BSN heeft 9 cijfers."))
    total = sum(int(d) * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True))
    total -= int(digits[8])
    if total % 11 != 0 or digits == "000000000":
        raise InvalidBSN(N_("Dit BSN klopt niet. Controleer de cijfers."))
    return digits


def bsn_index(index_key: bytes, bsn: str) -> str:
    """Keyed hash of a BSN, for finding a case by BSN without storing it in clear."""
    return hmac.new(index_key, normalise_bsn(bsn).encode(), hashlib.sha256).hexdigest()
