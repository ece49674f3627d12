"""Fixtures of the alert API tests: the sample alerts in a fresh table on the session's emulator."""

from __future__ import annotations

import pytest

from pipeline.api.app import AlertApi
from pipeline.api.store import ApiSettings
from pipeline.config import Config, RuntimeSettings
from tests.pipeline.api.apikit import SPECS, alert_rows, api_for, provision_api, write_alerts


@pytest.fixture(scope="module")
def runtime(aws_endpoint: str) -> RuntimeSettings:
    return RuntimeSettings(aws_endpoint=aws_endpoint)


@pytest.fixture(scope="module")
def api_settings(runtime: RuntimeSettings, config: Config) -> ApiSettings:
    """A table holding the sample alerts (``apikit.SPECS``), written by the pipeline's sink."""
    settings = provision_api(runtime)
    write_alerts(config, settings, alert_rows(SPECS))
    return settings


@pytest.fixture(scope="module")
def calls(api_settings: ApiSettings) -> list[str]:
    """The DynamoDB operations the API's client made (the tests of a module share one client)."""
    return []


@pytest.fixture(scope="module")
def api(api_settings: ApiSettings, calls: list[str]) -> AlertApi:
    """The handlers over the sample, recording their DynamoDB calls in ``calls``."""
    api = api_for(api_settings)
    api.store.dynamodb.meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: calls.append(model.name)
    )
    return api
