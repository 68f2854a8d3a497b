"""Secrets stored encrypted (webhook signing secrets, later gateway credentials).

Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) with keys from ``CE_SECRETS_KEY``:
one or more comma-separated urlsafe-base64 32-byte keys; the first encrypts, all decrypt
(``MultiFernet``), so a key is rotated by putting the new one first, re-encrypting the stored
tokens (``Secrets.rotate``) and then dropping the old key.
"""

from __future__ import annotations

import os
from typing import Final

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

ENV: Final = "CE_SECRETS_KEY"


class SecretsKeyError(RuntimeError):
    """The secrets key is missing, malformed, or not the one the secret was stored with."""


def generate_key() -> str:
    return Fernet.generate_key().decode()


def secrets_or_none() -> Secrets | None:
    """The configured secrets, or None when ``CE_SECRETS_KEY`` is not set (what needs a secret
    then waits for it: a gateway, an endpoint, a channel password)."""
    try:
        return Secrets()
    except SecretsKeyError:
        return None


class Secrets:
    def __init__(self, keys: str | None = None) -> None:
        raw = keys if keys is not None else os.environ.get(ENV, "")
        parts = [k.strip() for k in raw.split(",") if k.strip()]
        if not parts:
            raise SecretsKeyError(
                f"{ENV} is not set: generate one with `python -c 'from billing.secrets import"
                f" generate_key; print(generate_key())'` and keep it outside the database"
            )
        try:
            self._f = MultiFernet([Fernet(k.encode()) for k in parts])
        except (ValueError, TypeError):
            raise SecretsKeyError(
                f"{ENV} must hold urlsafe-base64 32-byte keys, comma-separated"
            ) from None

    def encrypt(self, plain: str) -> bytes:
        return self._f.encrypt(plain.encode())

    def decrypt(self, token: bytes) -> str:
        try:
            return self._f.decrypt(bytes(token)).decode()
        except InvalidToken:
            raise SecretsKeyError(
                f"a stored secret does not decrypt with {ENV}: the key changed without"
                " keeping the old one (list it after the new one)"
            ) from None

    def rotate(self, token: bytes) -> bytes:
        """The same secret re-encrypted under the first key (key rotation)."""
        try:
            return self._f.rotate(bytes(token))
        except InvalidToken:
            raise SecretsKeyError(
                f"a stored secret does not decrypt with {ENV}: it cannot be re-encrypted"
            ) from None
