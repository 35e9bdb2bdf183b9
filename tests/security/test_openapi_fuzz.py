"""Schemathesis over /safety/openapi.json: no input yields a 5xx, and every response matches the document."""

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.resilience]

FUZZ_KEY = "fuzz-key-0123456789abcdef0123456789"
MAX_EXAMPLES = 40  # per operation; keeps the whole run well under a minute on 2 cores

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]

schema = schemathesis.openapi.from_wsgi("/safety/openapi.json", get_wsgi_application())


@pytest.fixture(autouse=True)
def _env_key(settings):
    # A privileged env key: no database row needed, and no rate limit in the way of the fuzzer.
    settings.SAFETY_API_KEYS = f"{FUZZ_KEY}:privileged"


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case):
    # The data-acceptance checks are left out on purpose: a schema-valid prompt may be refused (400, the contract's
    # refusal), a reused Idempotency-Key with another body is 422, and an over-long user_input is 413, all by
    # design (DESIGN.md §2); schemathesis expects only its own lists of codes there.
    case.call_and_validate(headers={"X-API-Key": FUZZ_KEY}, checks=CHECKS)
