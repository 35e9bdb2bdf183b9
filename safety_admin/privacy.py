"""Personal identifiers: pseudonyms for logs, metrics and screens; AES-GCM ciphertext for the rare lawful reveal.

``pseudonymize`` is a keyed HMAC (``PSEUDONYM_KEY``): stable, so analytics can count per principal without
knowing who it is. ``encrypt_identifier`` / ``decrypt_identifier`` use AES-256-GCM with ``PII_ENCRYPTION_KEY``;
only ``audits.services.audit_identity_reveal`` (privileged staff, itself audited) decrypts.
Outside production a missing key is generated once and kept under ``DATA_DIR`` so restarts can still decrypt.
"""

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

TOKEN_PREFIX = "v1"
BAD_KEY = "PII_ENCRYPTION_KEY must be 32 bytes, given as 64 hex characters or base64."
BAD_TOKEN = "The encrypted identifier is malformed or was encrypted with another key."


def pseudonymize(identifier: str) -> str:
    """A stable keyed HMAC of ``identifier`` (``u_`` + 16 hex chars); the same id always maps the same way."""
    if not identifier:
        return ""
    return _pseudonym(settings.PSEUDONYM_KEY, identifier)


@lru_cache(maxsize=4096)
def _pseudonym(key: str, identifier: str) -> str:
    # Cached: the request path asks for the same few principals' pseudonyms several times per request.
    digest = hmac.new(key.encode(), identifier.encode(), hashlib.sha256).hexdigest()
    return f"u_{digest[:16]}"


def decode_key_bytes(raw: str, *, length: int, error: str) -> bytes:
    """A key given as hex or (url-safe) base64; raises ImproperlyConfigured with ``error`` otherwise."""
    raw = raw.strip()
    candidates = []
    if len(raw) == 2 * length:
        with contextlib.suppress(ValueError):
            candidates.append(bytes.fromhex(raw))
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        with contextlib.suppress(binascii.Error, ValueError):
            candidates.append(decode(raw + "=" * (-len(raw) % 4)))
    for value in candidates:
        if len(value) == length:
            return value
    raise ImproperlyConfigured(error)


_dev_key_cache: dict[tuple[str, str], bytes] = {}


def development_key_file(name: str, generate: Callable[[], bytes]) -> bytes:
    """The bytes of ``DATA_DIR/<name>``, created once (0600, atomically) when missing. Never in production.

    Read once per process and data directory: every audited request encrypts, and a stat per call cost more
    than the encryption. Deleting the data directory under running processes is not supported (they would keep
    the old key while new processes generate another)."""
    if settings.PRODUCTION:
        raise ImproperlyConfigured(f"{name}: keys must come from the environment when SAFETY_ENV=production")
    cache_key = (str(settings.DATA_DIR), name)
    cached = _dev_key_cache.get(cache_key)
    if cached is not None:
        return cached
    path = Path(settings.DATA_DIR) / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process won the race; read its key below
            pass
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(generate())
    for _ in range(50):  # the winner may still be writing
        content = path.read_bytes()
        if content:
            _dev_key_cache[cache_key] = content
            return content
        time.sleep(0.01)
    raise ImproperlyConfigured(f"{path} is empty; delete it to generate a new development key")


def _raw_pii_key() -> str:
    return (
        settings.PII_ENCRYPTION_KEY
        or development_key_file("pii-encryption.key", lambda: secrets.token_hex(32).encode()).decode()
    )


@lru_cache(maxsize=8)
def _cipher(raw: str) -> tuple[bytes, str, "AESGCM"]:
    """(key, key id, AESGCM) for a configured key: every audited request encrypts, so decode and set up once."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = decode_key_bytes(raw, length=32, error=BAD_KEY)
    return key, _key_id(key), AESGCM(key)


def pii_key() -> bytes:
    """The 32-byte AES-GCM key: PII_ENCRYPTION_KEY, or the development key file."""
    return _cipher(_raw_pii_key())[0]


def _key_id(key: bytes) -> str:
    return hashlib.sha256(b"pii-key-id" + key).hexdigest()[:8]


def encrypt_identifier(identifier: str, *, context: str = "") -> str:
    """``v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>``; ``context`` is bound as associated data."""
    if not identifier:
        return ""
    _key, key_id, aead = _cipher(_raw_pii_key())
    nonce = secrets.token_bytes(12)
    sealed = aead.encrypt(nonce, identifier.encode(), context.encode())
    return f"{TOKEN_PREFIX}:{key_id}:{base64.urlsafe_b64encode(nonce + sealed).decode().rstrip('=')}"


def _decryptor(key_id: str) -> "AESGCM | None":
    """The cipher of the current key or of a retired one (``PII_ENCRYPTION_PREVIOUS_KEYS``) with this key id."""
    for raw in (_raw_pii_key(), *settings.PII_ENCRYPTION_PREVIOUS_KEYS):
        _key, candidate_id, aead = _cipher(raw)
        if candidate_id == key_id:
            return aead
    return None


def decrypt_identifier(token: str, *, context: str = "") -> str:
    """The identifier inside ``token``; ValueError(BAD_TOKEN) when it is malformed, altered or from a key that is
    neither the current one nor listed in ``PII_ENCRYPTION_PREVIOUS_KEYS``."""
    from cryptography.exceptions import InvalidTag

    try:
        prefix, key_id, body = token.split(":")
        blob = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (ValueError, binascii.Error):
        raise ValueError(BAD_TOKEN) from None
    aead = _decryptor(key_id)
    if prefix != TOKEN_PREFIX or aead is None or len(blob) < 12 + 16:
        raise ValueError(BAD_TOKEN)
    try:
        return aead.decrypt(blob[:12], blob[12:], context.encode()).decode()
    except InvalidTag:
        raise ValueError(BAD_TOKEN) from None
