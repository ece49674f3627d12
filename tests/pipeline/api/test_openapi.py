"""``docs/openapi.yaml`` is a valid OpenAPI document and describes what the handlers actually answer:
for requests drawn from the documented parameters (good values and bad), every response has a status
the route declares and a body that validates against its schema."""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate as validate_spec
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from pipeline.api.app import ROUTES, AlertApi
from pipeline.api.store import ApiSettings
from tests.pipeline.api.apikit import (
    DETECTORS,
    KINDS,
    SEVERITIES,
    SYMBOLS,
    T0,
    body,
    gateway_event,
    throttled,
)

pytestmark = pytest.mark.integration

SPEC: dict[str, Any] = yaml.safe_load(
    (Path(__file__).resolve().parents[3] / "docs" / "openapi.yaml").read_text()
)
REGISTRY = Registry().with_resource(
    "urn:api", Resource.from_contents(SPEC, default_specification=DRAFT202012)
)
ID_CHARS = string.ascii_letters + string.digits + "-_."


def _pointer(ref: str) -> Any:
    node: Any = SPEC
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def check_response(route: str, reply: dict[str, Any]) -> None:
    """``reply`` has a status ``route`` declares and a body its schema accepts."""
    responses = SPEC["paths"][route]["get"]["responses"]
    status = str(reply["statusCode"])
    assert status in responses, (
        f"{route} answered {status}, which docs/openapi.yaml does not declare: {reply}"
    )
    declared = responses[status]
    if "$ref" in declared:
        declared = _pointer(declared["$ref"])
    media = declared["content"][reply["headers"]["content-type"]]
    validator = OAS31Validator({"$ref": "urn:api" + media["schema"]["$ref"]}, registry=REGISTRY)
    errors = sorted(validator.iter_errors(body(reply)), key=str)
    assert not errors, f"{route} {status}: {errors[0].message} in {json.dumps(body(reply))[:500]}"
    for header in declared.get("headers", {}):
        assert header in reply["headers"], f"{route} {status} lacks the {header} header"


def test_the_document_is_valid_openapi_with_the_handlers_routes() -> None:
    validate_spec(SPEC)
    assert set(SPEC["paths"]) == set(ROUTES)
    assert all(set(item) == {"get"} for item in SPEC["paths"].values())


junk = st.text(min_size=0, max_size=12)
times = st.sampled_from([str(T0), str(T0 + 3_600_000_000), "2026-01-01T00:30:00Z", "2026-01-01"]) | junk
list_parameters = st.fixed_dictionaries(
    {},
    optional={
        "symbol": st.sampled_from(SYMBOLS) | junk,
        "detector": st.sampled_from(DETECTORS) | junk,
        "kind": st.sampled_from(KINDS) | junk,
        "severity": st.sampled_from(SEVERITIES) | junk,
        "from": times,
        "to": times,
        "limit": st.integers(-1, 1200).map(str) | junk,
        "cursor": junk,
        "order": junk,
    },
)


@settings(max_examples=60)
@given(query=list_parameters)
def test_alert_lists_match_the_document(api: AlertApi, query: dict[str, str]) -> None:
    check_response("/alerts", api.handle(gateway_event("/alerts", query)))


@settings(max_examples=20)
@given(alert_id=st.text(ID_CHARS, min_size=1, max_size=40), take_listed=st.booleans(), extra=st.booleans())
def test_single_alerts_match_the_document(
    api: AlertApi, alert_id: str, take_listed: bool, extra: bool
) -> None:
    if take_listed:
        alert_id = body(api.handle(gateway_event("/alerts", {"limit": "1"})))["alerts"][0]["alert_id"]
    reply = api.handle(gateway_event(f"/alerts/{alert_id}", {"x": "1"} if extra else None))
    check_response("/alerts/{alert_id}", reply)


@settings(max_examples=20)
@given(symbol=st.sampled_from(SYMBOLS) | st.text(ID_CHARS, min_size=1, max_size=140), to=st.none() | times)
def test_summaries_match_the_document(api: AlertApi, symbol: str, to: str | None) -> None:
    reply = api.handle(gateway_event(f"/symbols/{symbol}/summary", {"to": to} if to is not None else None))
    check_response("/symbols/{symbol}/summary", reply)


def test_health_and_a_throttle_match_the_document(api: AlertApi, api_settings: ApiSettings) -> None:
    check_response("/health", api.handle(gateway_event("/health")))
    with throttled(api_settings) as throttled_api:
        check_response("/alerts", throttled_api.handle(gateway_event("/alerts", {"symbol": "BTCUSDT"})))
