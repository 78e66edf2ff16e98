"""schemathesis against the served API's own OpenAPI document, every operation, valid and
invalid input, with a token that has every role: zero failures (responses match the
documented statuses, shapes and content types; no 5xx; invalid input refused; auth not
ignored; schema-valid input accepted).

Two exceptions, each with a stricter check in its place, for input that fits the schema but
breaks a rule JSON Schema cannot state:

- a label (no card number in an identifier, reported after the transaction, a transaction
  time in 2000-2099): ``POST /v1/labels`` may refuse valid data, but only with a domain
  reason code (``features.validation.Reason``), never as a schema error;
- SQL (any string fits the schema; DuckDB decides whether it is a query over the view):
  ``POST /v1/audit/sql`` may refuse valid data, but only as ``invalid_query``;
- a card's live features with no worker running: 503 ``unavailable`` (no live owner), the
  documented answer, instead of "no server error";
- "as of" one thing only (``as_of``, ``tag`` or ``snapshot_id``): the audit reads may refuse
  schema-valid parameters as ``invalid_request``, but only when more than one was given;
- a page cursor is opaque (any string fits the schema; only one the API gave is a cursor):
  a card's audited decisions may refuse a ``cursor`` as ``invalid_query``, but only when one
  was given.

Driven through hypothesis directly: schemathesis' pytest plugin does not run on pytest 9.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.api.auth import Role
from features.validation import Reason
from tests.integration.api.conftest import ServedApi
from tests.support.api import bearer, token

MODES = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
AS_OF = ("as_of", "tag", "snapshot_id")
AS_OF_READS = {
    ("GET", "/v1/decisions/{transaction_id}"),
    ("GET", "/v1/audit/cards/{card_id}/decisions"),
    ("GET", "/v1/audit/days/{day}/stats"),
    ("POST", "/v1/audit/sql"),  # in its body
}
# no worker runs here, so every card's partition has no live owner: 503 is the answer
NO_OWNER = ("GET", "/v1/cards/{card_id}/features")
# pages of a card's audited decisions: a cursor the API did not give is refused
PAGED = ("GET", "/v1/audit/cards/{card_id}/decisions")
# operation -> the error codes its schema-valid input may still be refused with (422)
DOMAIN_RULES: dict[tuple[str, str], set[str]] = {
    ("POST", "/v1/labels"): {str(reason) for reason in Reason},
    ("POST", "/v1/audit/sql"): {"invalid_query"},
}


def _conforms(case: schemathesis.Case[Any], headers: dict[str, str], positive: bool) -> None:
    operation = (case.method.upper(), case.path)
    codes = DOMAIN_RULES.get(operation)
    given = case.body if isinstance(case.body, dict) else case.query or {}
    if operation in AS_OF_READS and sum(given.get(name) is not None for name in AS_OF) > 1:
        codes = {"invalid_request"}
    if operation == PAGED and given.get("cursor") is not None:
        codes = (codes or set()) | {"invalid_query"}
    excluded: list[CheckFunction] = [] if codes is None else [positive_data_acceptance]
    if operation == NO_OWNER:
        excluded.append(not_a_server_error)
    response = case.call_and_validate(headers=headers, excluded_checks=excluded)
    if operation == NO_OWNER and response.status_code >= 500:
        assert (response.status_code, response.json()["error"]["code"]) == (503, "unavailable")
    if codes is not None and positive and response.status_code == 422:
        assert response.json()["error"]["code"] in codes


@pytest.mark.parametrize("mode", MODES, ids=lambda mode: mode.value)
def test_the_api_matches_its_openapi_document(
    served_api: ServedApi, mode: schemathesis.GenerationMode
) -> None:
    schema = schemathesis.openapi.from_url(f"{served_api.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    document = schema.raw_schema["paths"]
    assert len(operations) == sum(len(methods) for methods in document.values())  # all parsed
    headers = bearer(token(*Role))
    positive = mode is schemathesis.GenerationMode.POSITIVE

    @given(case=st.one_of(*(operation.as_strategy(mode) for operation in operations)))
    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def conforms(case: schemathesis.Case[Any]) -> None:
        _conforms(case, headers, positive)

    conforms()
