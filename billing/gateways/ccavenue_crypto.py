"""CCAvenue's request/response encryption, as its integration kits implement it.

AES-128-CBC with PKCS#7 padding; the key is the MD5 digest (16 raw bytes) of the merchant's
working key, the IV the fixed bytes 0x00..0x0f, and the ciphertext travels hex-encoded. There is
no MAC: a response that decrypts under our working key (valid padding, UTF-8) is the only proof
that CCAvenue wrote it, so ``decrypt`` refuses anything else with ``ValueError``.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["decrypt", "encrypt"]

_IV: Final = bytes(range(16))
_BLOCK_BITS: Final = 128
_HEX: Final = re.compile(r"[0-9a-fA-F]*")


def _cipher(working_key: str) -> Cipher[modes.CBC]:
    # MD5 is CCAvenue's key derivation, not our choice: the kits all do md5(working_key).
    key = hashlib.md5(working_key.encode()).digest()
    return Cipher(algorithms.AES(key), modes.CBC(_IV))


def encrypt(plain: str, working_key: str) -> str:
    """``plain`` (UTF-8) encrypted with ``working_key``, as lowercase hex."""
    padder = padding.PKCS7(_BLOCK_BITS).padder()
    data = padder.update(plain.encode()) + padder.finalize()
    encryptor = _cipher(working_key).encryptor()
    return (encryptor.update(data) + encryptor.finalize()).hex()


def decrypt(hex_text: str, working_key: str) -> str:
    """The text ``hex_text`` encrypts under ``working_key``; ``ValueError`` when it is not hex,
    not whole blocks, badly padded (another key, tampered) or not UTF-8."""
    if not _HEX.fullmatch(hex_text) or len(hex_text) % 2:
        raise ValueError("not hex")
    raw = bytes.fromhex(hex_text)
    if not raw or len(raw) % (_BLOCK_BITS // 8):
        raise ValueError("not a whole number of AES blocks")
    decryptor = _cipher(working_key).decryptor()
    padded = decryptor.update(raw) + decryptor.finalize()
    unpadder = padding.PKCS7(_BLOCK_BITS).unpadder()
    try:
        data = unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise ValueError("bad padding: another working key, or tampered") from None
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise ValueError("not UTF-8: another working key, or tampered") from None
