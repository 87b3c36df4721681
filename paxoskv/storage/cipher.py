"""Encryption at rest: AES-256-GCM per journal record and per snapshot body.

Nonces. A GCM nonce must never repeat under one key, and a journal does rewrite the same
index after a crash cut its tail, so the nonce cannot be derived from the index alone. Every
file gets a fresh random 64-bit salt in its header, the store never appends to a file it did
not create in this run (a re-opened store starts a new segment), and the nonce is
``salt (8 bytes) | u32 counter`` where the counter is the record's position in its segment
(0 for a snapshot body; 0xFFFFFFFF is reserved for the key check). Salts are random, so the
limit is the birthday bound on them: about 2**32 files per key before a repeat becomes
likely, far beyond any data dir's lifetime; rotate the key long before that.

A record's index is its associated data, so a record moved to another position fails to
decrypt instead of replaying in the wrong place. The CRCs in the framing cover the ciphertext:
damage is found without the key, and the key is needed only to read.

Wrong keys are caught at open: each file header carries a key-check tag (GCM over an empty
message, with the header as associated data), which only the right key reproduces.
"""

from __future__ import annotations

import binascii
import struct
from pathlib import Path
from typing import TYPE_CHECKING

from paxoskv.errors import ConfigurationError

if TYPE_CHECKING:  # imported when a key is given: an unencrypted store never loads OpenSSL
    from cryptography.hazmat.primitives.ciphers import (
        AEADDecryptionContext,
        AEADEncryptionContext,
    )

__all__ = ["KEY_SIZE_BYTES", "SALT_SIZE_BYTES", "TAG_SIZE_BYTES", "RecordCipher", "invalid_tag"]

KEY_SIZE_BYTES = 32
SALT_SIZE_BYTES = 8
TAG_SIZE_BYTES = 16
KEY_CHECK_COUNTER = 0xFFFFFFFF
MAX_COUNTER = KEY_CHECK_COUNTER - 1
_COUNTER = struct.Struct("<I")
_INDEX = struct.Struct("<Q")


class RecordCipher:
    """AES-GCM with the nonce rule above; the key is checked for size, never logged."""

    __slots__ = ("_aead", "_key")

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE_BYTES:
            raise ConfigurationError(
                f"an encryption key must be {KEY_SIZE_BYTES} bytes, got {len(key)}; "
                "use load_key_file() on a file of 32 raw bytes or 64 hex characters"
            )
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(key)
        self._key = key

    def key_check(self, salt: bytes, header_prefix: bytes) -> bytes:
        """The tag that proves, at open, that this key wrote the file."""
        return self._aead.encrypt(_nonce(salt, KEY_CHECK_COUNTER), b"", header_prefix)

    def seal(self, salt: bytes, counter: int, index: int, plaintext: bytes) -> bytes:
        return self._aead.encrypt(_nonce(salt, counter), plaintext, _INDEX.pack(index))

    def open(self, salt: bytes, counter: int, index: int, ciphertext: bytes) -> bytes:
        """Raises ``InvalidTag`` when the bytes were not sealed here with this key."""
        return self._aead.decrypt(_nonce(salt, counter), ciphertext, _INDEX.pack(index))

    def encryptor(self, salt: bytes, counter: int, index: int) -> AEADEncryptionContext:
        """Streaming :meth:`seal` for a snapshot packed piece by piece: the ciphertext of
        each ``update`` in turn, then ``finalize()``, then its ``tag``, are :meth:`seal`'s
        bytes (GCM's ciphertext is the plaintext's length; its tag comes last)."""
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        context = Cipher(algorithms.AES(self._key), modes.GCM(_nonce(salt, counter))).encryptor()
        context.authenticate_additional_data(_INDEX.pack(index))
        return context

    def decryptor(self, salt: bytes, counter: int, index: int, tag: bytes) -> AEADDecryptionContext:
        """Streaming :meth:`open` for a snapshot too big to hold twice; ``finalize()`` raises
        ``InvalidTag`` at the end if the bytes were not sealed with this key."""
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        mode = modes.GCM(_nonce(salt, counter), tag)
        context = Cipher(algorithms.AES(self._key), mode).decryptor()
        context.authenticate_additional_data(_INDEX.pack(index))
        return context


def invalid_tag() -> type[Exception]:
    """``cryptography``'s InvalidTag, for ``except invalid_tag():`` around a cipher's calls.

    An except clause evaluates its expression only when an exception is being matched, and
    only a cipher (which has imported ``cryptography``) raises one there: so a store without
    encryption never pays for importing OpenSSL's bindings, a sizeable share of a restarted
    node's start-up.
    """
    from cryptography.exceptions import InvalidTag

    return InvalidTag


def _nonce(salt: bytes, counter: int) -> bytes:
    return salt + _COUNTER.pack(counter)


def load_key_file(path: str | Path) -> bytes:
    """Read a key file: exactly 32 raw bytes, or 64 hex characters (surrounding space ignored).

    Both forms are accepted because ``head -c 32 /dev/urandom`` and ``openssl rand -hex 32``
    are what people reach for.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as error:  # a user's mistake (exit 2), not a failed disk (exit 4)
        raise ConfigurationError(
            f"cannot read the encryption key file {path}: {error.strerror or error}"
        ) from None
    if len(raw) == KEY_SIZE_BYTES:
        return raw
    text = raw.strip()
    if len(text) == 2 * KEY_SIZE_BYTES:
        try:
            return binascii.unhexlify(text)
        except binascii.Error:
            raise ConfigurationError(
                f"key file {path} holds 64 characters that are not all hex digits; it must "
                "hold 32 raw bytes or 64 hex characters (make one with: openssl rand -hex 32 "
                "> keyfile)"
            ) from None
    raise ConfigurationError(
        f"key file {path} holds {len(raw)} bytes; it must hold 32 raw bytes or 64 hex "
        "characters (make one with: openssl rand -hex 32 > keyfile)"
    )
