"""The Ed25519 key that signs checkpoints: from AUDIT_SIGNING_KEY, or a development key kept under DATA_DIR."""

import hashlib
from functools import lru_cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from safety_admin.privacy import decode_key_bytes, development_key_file

BAD_SIGNING_KEY = "AUDIT_SIGNING_KEY must be an Ed25519 private key: PEM (PKCS#8), or 32 bytes as hex or base64."
DEV_KEY_FILE = "audit-signing-key.pem"


def _generate_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def parse_private_key(raw: str) -> Ed25519PrivateKey:
    raw = raw.strip()
    if raw.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(raw.encode(), password=None)
        except ValueError:
            raise ImproperlyConfigured(BAD_SIGNING_KEY) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ImproperlyConfigured(BAD_SIGNING_KEY)
        return key
    return Ed25519PrivateKey.from_private_bytes(decode_key_bytes(raw, length=32, error=BAD_SIGNING_KEY))


@lru_cache(maxsize=4)
def _load(raw: str) -> Ed25519PrivateKey:
    return parse_private_key(raw)


def private_key() -> Ed25519PrivateKey:
    raw = settings.AUDIT_SIGNING_KEY or development_key_file(DEV_KEY_FILE, _generate_pem).decode()
    return _load(raw)


def public_key_hex(key: Ed25519PublicKey | None = None) -> str:
    key = key or private_key().public_key()
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def fingerprint(public_hex: str) -> str:
    """A short, human-comparable fingerprint of a public key (first 16 hex of its SHA-256)."""
    return hashlib.sha256(bytes.fromhex(public_hex)).hexdigest()[:16]


def trusted_public_keys() -> set[str]:
    """The current key's public half plus retired ones listed in AUDIT_TRUSTED_PUBLIC_KEYS (hex)."""
    return {public_key_hex(), *(k.strip().lower() for k in settings.AUDIT_TRUSTED_PUBLIC_KEYS)}


def sign(message: bytes) -> str:
    return private_key().sign(message).hex()


def signature_valid(public_hex: str, signature_hex: str, message: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex)).verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError):
        return False
    return True
