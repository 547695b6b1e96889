"""The OpenAPI fuzz tests of tests/api/test_openapi_fuzz.py, on PostgreSQL.

The very same test is collected again with the app on an empty schema of this
session's scratch PostgreSQL database (``postgres_url``), so both backends are held
to the one contract without a second copy of the test. The app factory is the API
tests' own ``make_api`` (tests/api/conftest.py), loaded here because conftest
fixtures only reach the tests beside them.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

_API_TESTS = Path(__file__).resolve().parents[1] / "api"
if str(_API_TESTS) not in sys.path:
    sys.path.insert(0, str(_API_TESTS))
fuzz = importlib.import_module("test_openapi_fuzz")
_spec = importlib.util.spec_from_file_location("perpdesk_api_test_fixtures",
                                               _API_TESTS / "conftest.py")
assert _spec is not None and _spec.loader is not None
api_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(api_fixtures)

make_api = api_fixtures.make_api
caller = fuzz.caller
credentials = fuzz.credentials
fuzz_app = fuzz.fuzz_app
fuzz_schema = fuzz.fuzz_schema


@pytest.fixture
def app_settings(postgres_url: str) -> dict[str, Any]:
    return {"database_url": postgres_url}


test_every_operation_holds_to_its_contract = fuzz.test_every_operation_holds_to_its_contract


def test_the_fuzzed_app_really_is_on_postgresql(fuzz_app: Any) -> None:
    """Guard: the test above does run on PostgreSQL."""
    assert fuzz_app.system.db.dialect.name == "postgresql"
