"""Property-based tests of the HTTP API against its own OpenAPI document (schemathesis): for
generated valid and invalid requests to every operation, no 5xx and every response as
documented (status code, content type, headers, body schema). A short run in the default set;
a long one marked slow.

(Built with `schema.as_strategy()` + hypothesis rather than `schemathesis.pytest.from_fixture`,
whose lazy loader does not run under pytest 9.)
"""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis import checks as built_in
from schemathesis.specs.openapi import checks as openapi_checks

from mouthpiece.service.app import create_app

from .conftest import make_settings, new_account, sign_in

CHECKS = [built_in.not_a_server_error, openapi_checks.status_code_conformance,
          openapi_checks.content_type_conformance, openapi_checks.response_headers_conformance,
          openapi_checks.response_schema_conformance]


@pytest.fixture
def api(tmp_path):
    """(schema, admin access token): admin, so that admin routes are exercised past the 403."""
    app = create_app(make_settings(tmp_path / "data"))
    with TestClient(app) as client:
        token = sign_in(client, new_account(app, "admin"))["access_token"]
        yield schemathesis.openapi.from_asgi("/openapi.json", app), token


def _run(schema, token: str, mode: GenerationMode, examples: int) -> None:
    @given(case=schema.as_strategy(generation_mode=mode))
    # derandomize: a fixed example sequence. With random ones, schemathesis' negative mode now
    # and then fails to generate at all ("Unsupported type: 'Binary'" while mutating the
    # multipart upload body — its own error, before any request), which made CI flaky.
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def one(case) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)

    one()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_conforms_to_its_schema(api, mode):
    _run(*api, mode, examples=60)


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_conforms_to_its_schema_long_run(api, mode):
    _run(*api, mode, examples=1500)
