"""The guard against real AWS: local endpoints get dummy credentials; anything else needs two opt-ins."""

from __future__ import annotations

import pytest

from core.errors import StackError, UnsafeEndpointError
from pipeline.aws import DUMMY_CREDENTIALS, check_endpoint, client, endpoint_for, is_local_endpoint
from pipeline.config import RuntimeSettings

REMOTE = "https://kinesis.us-east-1.amazonaws.com"


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:5000", True),
        ("http://127.5.6.7:5000", True),
        ("http://localhost:4566", True),
        ("http://[::1]:4566", True),
        (None, False),
        ("", False),
        (REMOTE, False),
        ("http://10.0.0.5:4566", False),
        ("http://localhost.evil.example:4566", False),
        ("http://127.0.0.1.nip.io:4566", False),
        ("http://0.0.0.0:4566", False),
    ],
)
def test_is_local_endpoint(url: str | None, local: bool) -> None:
    assert is_local_endpoint(url) is local


def test_local_endpoint_passes_for_every_profile() -> None:
    for profile in ("lite", "mirror", "aws"):
        check_endpoint(RuntimeSettings(profile=profile, aws_endpoint="http://127.0.0.1:1"))


@pytest.mark.parametrize(
    "runtime",
    [
        RuntimeSettings(),  # no endpoint at all means real AWS
        RuntimeSettings(aws_endpoint=REMOTE),
        RuntimeSettings(profile="mirror", aws_endpoint=REMOTE, allow_real_aws=True),
        RuntimeSettings(profile="aws", aws_endpoint=REMOTE),  # the profile alone is not enough
        RuntimeSettings(profile="aws"),
        RuntimeSettings(aws_endpoint="http://127.0.0.1:1", service_endpoints={"kinesis": REMOTE}),
    ],
)
def test_non_local_is_refused_without_both_opt_ins(runtime: RuntimeSettings) -> None:
    with pytest.raises(UnsafeEndpointError, match="--profile aws together with --allow-real-aws"):
        check_endpoint(runtime)
    assert issubclass(UnsafeEndpointError, StackError)


def test_real_aws_needs_profile_and_flag() -> None:
    check_endpoint(RuntimeSettings(profile="aws", allow_real_aws=True))
    check_endpoint(RuntimeSettings(profile="aws", aws_endpoint=REMOTE, allow_real_aws=True))


def test_per_service_endpoint_overrides_and_is_guarded_per_service() -> None:
    runtime = RuntimeSettings(aws_endpoint="http://127.0.0.1:1", service_endpoints={"kinesis": REMOTE})
    assert endpoint_for("kinesis", runtime) == REMOTE
    assert endpoint_for("dynamodb", runtime) == "http://127.0.0.1:1"
    check_endpoint(runtime, "dynamodb")
    with pytest.raises(UnsafeEndpointError, match=REMOTE):
        check_endpoint(runtime, "kinesis")
    with pytest.raises(UnsafeEndpointError):
        client("kinesis", runtime)


def test_client_refuses_before_building_anything() -> None:
    with pytest.raises(UnsafeEndpointError):
        client("kinesis", RuntimeSettings(aws_endpoint=REMOTE))


def test_local_client_gets_dummy_credentials_not_the_callers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREALREALREALREAL")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "real-secret")
    runtime = RuntimeSettings(
        aws_endpoint="http://127.0.0.1:4566", service_endpoints={"glue": "http://127.0.0.1:5000"}
    )
    kinesis = client("kinesis", runtime)
    credentials = kinesis._request_signer._credentials
    assert credentials.access_key == DUMMY_CREDENTIALS["aws_access_key_id"]
    assert credentials.secret_key == DUMMY_CREDENTIALS["aws_secret_access_key"]
    assert kinesis.meta.endpoint_url == "http://127.0.0.1:4566"
    assert client("glue", runtime).meta.endpoint_url == "http://127.0.0.1:5000"
