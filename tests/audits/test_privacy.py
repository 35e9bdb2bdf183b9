import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from audits import signing
from safety_admin import privacy
from safety_admin.privacy import BAD_KEY, BAD_TOKEN, decrypt_identifier, encrypt_identifier, pseudonymize
from tests.conftest import process_env

KEY_HEX = "11" * 32


def test_pseudonym_is_stable_keyed_and_short(settings):
    first = pseudonymize("apikey:abcd")
    settings.PSEUDONYM_KEY = "another-key"

    assert (first, pseudonymize("apikey:abcd") == first, pseudonymize("")) == (
        "u_" + first[2:], False, "")  # fmt: skip
    assert len(first) == 18


def test_encryption_round_trips_and_is_randomised(settings):
    settings.PII_ENCRYPTION_KEY = KEY_HEX

    one, two = encrypt_identifier("jwt:carol", context="audit-1"), encrypt_identifier("jwt:carol", context="audit-1")

    assert one != two
    assert (decrypt_identifier(one, context="audit-1"), decrypt_identifier(two, context="audit-1")) == (
        "jwt:carol", "jwt:carol")  # fmt: skip
    assert "carol" not in one


@pytest.mark.parametrize(
    "change",
    [
        lambda token: token[:-2] + ("AA" if token[-2:] != "AA" else "BB"),  # altered ciphertext
        lambda token: token.replace("v1:", "v9:"),
        lambda token: "garbage",
    ],
)
def test_altered_tokens_are_rejected(settings, change):
    settings.PII_ENCRYPTION_KEY = KEY_HEX
    token = encrypt_identifier("jwt:carol", context="audit-1")

    with pytest.raises(ValueError, match=BAD_TOKEN):
        decrypt_identifier(change(token), context="audit-1")


def test_wrong_context_or_key_is_rejected(settings):
    settings.PII_ENCRYPTION_KEY = KEY_HEX
    token = encrypt_identifier("jwt:carol", context="audit-1")
    with pytest.raises(ValueError, match=BAD_TOKEN):
        decrypt_identifier(token, context="audit-2")
    settings.PII_ENCRYPTION_KEY = "22" * 32
    with pytest.raises(ValueError, match=BAD_TOKEN):
        decrypt_identifier(token, context="audit-1")


def test_malformed_keys_are_refused(settings):
    settings.PII_ENCRYPTION_KEY = "too-short"
    with pytest.raises(ImproperlyConfigured, match=BAD_KEY):
        privacy.pii_key()
    with pytest.raises(ImproperlyConfigured, match="AUDIT_SIGNING_KEY must be"):
        signing.parse_private_key("abcd")


def test_development_keys_are_generated_once_and_kept(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    settings.PII_ENCRYPTION_KEY = ""
    settings.AUDIT_SIGNING_KEY = ""

    key = privacy.pii_key()
    public = signing.public_key_hex()

    assert (privacy.pii_key(), signing.public_key_hex()) == (key, public)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit-signing-key.pem", "pii-encryption.key"]
    assert (tmp_path / "audit-signing-key.pem").stat().st_mode & 0o777 == 0o600


def test_production_never_generates_keys(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    settings.PRODUCTION = True
    settings.PII_ENCRYPTION_KEY = ""

    with pytest.raises(ImproperlyConfigured, match="keys must come from the environment"):
        privacy.pii_key()
    assert list(tmp_path.iterdir()) == []


def test_production_refuses_to_start_without_audit_keys():
    env = {**process_env(), "SAFETY_ENV": "production", "DJANGO_SECRET_KEY": "p" * 60, "PSEUDONYM_KEY": "k" * 32,
           "DJANGO_ALLOWED_HOSTS": "example.org", "AUDIT_SIGNING_KEY": "", "PII_ENCRYPTION_KEY": ""}  # fmt: skip
    started = subprocess.run([sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True,
                             text=True, timeout=60)  # fmt: skip

    assert started.returncode == 1
    assert started.stderr.strip().splitlines()[-1] == (
        "django.core.exceptions.ImproperlyConfigured: "
        "AUDIT_SIGNING_KEY and PII_ENCRYPTION_KEY must be set when SAFETY_ENV=production"
    )


def test_a_rotated_pii_key_still_reveals_what_the_old_key_encrypted(settings):
    old_key, new_key = "11" * 32, "22" * 32
    settings.PII_ENCRYPTION_KEY = old_key
    token = encrypt_identifier("jwt:carol", context="audit-1")

    settings.PII_ENCRYPTION_KEY = new_key
    with pytest.raises(ValueError, match=BAD_TOKEN):
        decrypt_identifier(token, context="audit-1")

    settings.PII_ENCRYPTION_PREVIOUS_KEYS = [old_key]
    fresh = encrypt_identifier("jwt:dave", context="audit-2")
    assert decrypt_identifier(token, context="audit-1") == "jwt:carol"
    assert decrypt_identifier(fresh, context="audit-2") == "jwt:dave"
    assert fresh.split(":")[1] != token.split(":")[1]  # new events use the new key


def test_a_malformed_previous_pii_key_is_reported_by_the_system_check(settings):
    from audits.apps import check_keys

    settings.PII_ENCRYPTION_PREVIOUS_KEYS = ["not-a-key"]
    assert [error.id for error in check_keys(None)] == ["audits.E002"]
