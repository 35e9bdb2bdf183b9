"""Who is calling: hashed API keys (database or SAFETY_API_KEYS) or HS256 JWTs."""

import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache

import jwt
from django.conf import settings

from safety_admin.accounts.models import Tier
from safety_admin.gateway.models import ApiKey
from safety_admin.privacy import pseudonymize
from safety_admin.ttl_cache import TtlCache

KEY_PREFIX = "sa_"
VALID_TIERS = {t.value for t in Tier}
PROFILE_MAX_LENGTH = 100  # InferenceRequest.profile and ApiKey.profile


class AuthenticationFailed(Exception):
    """No usable credentials; the message is safe to show to the client."""


@dataclass(frozen=True)
class Principal:
    """An authenticated API caller."""

    principal_id: str
    tier: str
    label: str
    profile: str = ""
    api_key_id: int | None = None

    @property
    def pseudonym(self) -> str:
        return pseudonymize(self.principal_id)


def hash_key(raw: str) -> str:
    """SHA-256 of the whole key. Keys carry 190+ bits of randomness, so a fast hash is enough."""
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def split_prefix(raw: str) -> str:
    """The visible prefix of a key ``sa_<prefix>_<secret>``, or "" if it has another shape."""
    if not raw.startswith(KEY_PREFIX):
        return ""
    prefix, sep, _secret = raw[len(KEY_PREFIX) :].partition("_")
    return prefix if sep and len(prefix) <= 16 else ""


@lru_cache(maxsize=8)
def _env_keys(spec: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in spec.split(","):
        key, _, tier = item.strip().rpartition(":")
        if key and tier in VALID_TIERS:
            pairs.append((hash_key(key), tier))
    return tuple(pairs)


def _from_api_key(raw: str) -> Principal:
    digest = hash_key(raw)
    # Env keys: compare every entry in constant time, so timing says nothing about which one matched.
    match = None
    for known, tier in _env_keys(settings.SAFETY_API_KEYS):
        if hmac.compare_digest(known, digest):
            match = tier
    if match:
        return Principal(principal_id=f"envkey:{digest[:12]}", tier=match, label=f"env key {digest[:6]}")
    prefix = split_prefix(raw)
    key = _api_key_by_prefix(prefix) if prefix else None
    if key is None or not hmac.compare_digest(key.key_hash, digest) or key.revoked_at is not None:
        raise AuthenticationFailed("unknown or revoked API key")
    return Principal(
        principal_id=key.principal_id,
        tier=key.tier,
        label=f"api key {key.name}",
        profile=key.profile,
        api_key_id=key.pk,
    )


# A short per-process cache of key rows keeps the database off the hot path; a revocation or a new key
# takes effect everywhere within SAFETY_AUTH_CACHE_SECONDS (documented in docs/gateway.md).
_key_cache: TtlCache[str, ApiKey | None] = TtlCache()


def _api_key_by_prefix(prefix: str) -> ApiKey | None:
    def load() -> ApiKey | None:
        fields = ("id", "name", "prefix", "key_hash", "tier", "profile", "revoked_at")
        return ApiKey.objects.filter(prefix=prefix).only(*fields).first()

    return _key_cache.get(prefix, load, settings.SAFETY_AUTH_CACHE_SECONDS)


def forget_cached_key(prefix: str) -> None:
    """Drop this process's cached row (the revoking process sees a revocation at once)."""
    _key_cache.forget(prefix)


def _from_jwt(token: str) -> Principal:
    if not settings.SAFETY_JWT_SECRET:
        raise AuthenticationFailed("JWT authentication is not configured")
    options = {"require": ["exp", "sub"]}
    kwargs = {}
    if settings.SAFETY_JWT_AUDIENCE:
        kwargs["audience"] = settings.SAFETY_JWT_AUDIENCE
        options["require"].append("aud")
    if settings.SAFETY_JWT_ISSUER:
        kwargs["issuer"] = settings.SAFETY_JWT_ISSUER
        options["require"].append("iss")
    claims = None
    # The current secret first, then the ones being rotated out (SAFETY_JWT_PREVIOUS_SECRETS).
    for secret in [settings.SAFETY_JWT_SECRET, *settings.SAFETY_JWT_PREVIOUS_SECRETS]:
        try:
            # The algorithm list is fixed: a token's own "alg" header cannot choose "none" or RS/HS confusion.
            claims = jwt.decode(token, secret, algorithms=["HS256"], options=options, **kwargs)
            break
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError as exc:
            raise AuthenticationFailed(f"invalid token: {exc}") from None
    if claims is None:
        raise AuthenticationFailed("invalid token: signature verification failed")
    sub, tier = claims.get("sub"), claims.get("tier", Tier.USER)
    if not isinstance(sub, str) or not sub or len(sub) > 150 or tier not in VALID_TIERS:
        raise AuthenticationFailed("invalid token claims")
    profile = claims.get("profile") if isinstance(claims.get("profile"), str) else ""
    if len(profile) > PROFILE_MAX_LENGTH:
        raise AuthenticationFailed("invalid token claims")
    return Principal(principal_id=f"jwt:{sub}", tier=tier, label=f"jwt {pseudonymize('jwt:' + sub)}", profile=profile)


def authenticate(request) -> Principal:
    """The caller of ``request``; raises AuthenticationFailed. Database errors propagate (→ 503)."""
    raw_key = request.headers.get("X-API-Key", "")
    if raw_key:
        return _from_api_key(raw_key.strip())
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return _from_jwt(token.strip())
    raise AuthenticationFailed("no credentials")
