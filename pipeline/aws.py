"""boto3 clients for the pipeline's AWS services, with the guard against reaching real AWS by accident.

An endpoint on the loopback interface is an emulator: clients get dummy credentials, so a developer's
real ones are never sent. Any other endpoint (or none, which means real AWS) is refused unless the
``aws`` profile and the explicit opt-in (``allow_real_aws``) are both given.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Iterator, Mapping
from typing import Any, Final
from urllib.parse import urlparse

from core.errors import UnsafeEndpointError
from pipeline.config import RuntimeSettings

DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
_KEPT_AWS_VARIABLES: Final = frozenset({"AWS_REGION", "AWS_DEFAULT_REGION"})


def local_environment(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` for a process that only talks to local emulators: every ``AWS_*`` variable but the region
    dropped (keys, session tokens, profiles, credential files, role and web-identity settings), dummy keys
    set and the instance-metadata lookup switched off, so no real credential can be inherited or found."""
    kept = {k: v for k, v in env.items() if not k.startswith("AWS_") or k in _KEPT_AWS_VARIABLES}
    return {
        **kept,
        "AWS_ACCESS_KEY_ID": DUMMY_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": DUMMY_CREDENTIALS["aws_secret_access_key"],
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@contextlib.contextmanager
def local_process_environment() -> Iterator[None]:
    """This process's environment made ``local_environment`` while the block runs, then restored: the
    children started meanwhile (Spark's JVM and Python workers, a replay process) inherit no real
    credential."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(local_environment(saved))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def is_local_endpoint(url: str | None) -> bool:
    """True when ``url`` names this machine's loopback interface."""
    if not url:
        return False
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def endpoint_for(service: str, runtime: RuntimeSettings) -> str | None:
    """The endpoint URL of ``service``: its entry in ``service_endpoints``, else ``aws_endpoint``."""
    return runtime.service_endpoints.get(service, runtime.aws_endpoint)


def check_endpoint(runtime: RuntimeSettings, service: str | None = None) -> None:
    """Raise ``UnsafeEndpointError`` unless the endpoint is local or real AWS was explicitly chosen.

    With ``service`` only that service's endpoint is checked, otherwise every endpoint the runtime names.
    """
    if runtime.profile == "aws" and runtime.allow_real_aws:
        return
    urls = (
        [endpoint_for(service, runtime)]
        if service
        else [runtime.aws_endpoint, *runtime.service_endpoints.values()]
    )
    unsafe = [url for url in urls if not is_local_endpoint(url)]
    if not unsafe:
        return
    target = unsafe[0] or "real AWS (no endpoint set)"
    raise UnsafeEndpointError(
        f"refusing to talk to {target}: local profiles need an endpoint on 127.0.0.1 "
        "(COATTAIL_AWS_ENDPOINT, or start the stack with `coattail up`); real AWS needs "
        "--profile aws together with --allow-real-aws"
    )


MAX_ATTEMPTS: Final = 5
"""Attempts per AWS call, the first included: the one retry policy of every client (botocore's standard
mode, which retries throttling and transient errors with jittered exponential backoff). Callers do not
retry such errors again."""


def client(service: str, runtime: RuntimeSettings, **kwargs: Any) -> Any:
    """A boto3 client for ``service`` that honours the endpoint guard."""
    import boto3
    from botocore.config import Config as BotoConfig

    check_endpoint(runtime, service)
    endpoint = endpoint_for(service, runtime)
    options: dict[str, Any] = {
        "region_name": runtime.region,
        "config": BotoConfig(retries={"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"}),
        **kwargs,
    }
    if is_local_endpoint(endpoint):
        options.update(endpoint_url=endpoint, **DUMMY_CREDENTIALS)
    elif endpoint:
        options["endpoint_url"] = endpoint  # explicit non-local endpoint: only reachable past the guard
    factory: Any = boto3.client  # the stubs' per-service overloads cannot take a runtime name
    return factory(service, **options)


_SERVICE_NAMES: Final = {"kinesis": "Kinesis", "dynamodb": "DynamoDB", "s3": "S3", "glue": "Glue"}


def failure(service: str, runtime: RuntimeSettings, doing: str, error: BaseException) -> str:
    """The message for a failed call to ``service``: what failed, where, and what to do.

    A connection that cannot be made or breaks (after the retry policy's ``MAX_ATTEMPTS``) means the
    endpoint is gone: for a local one, the emulator stopped or crashed, and its in-memory streams and
    tables went with it.
    """
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    name = _SERVICE_NAMES.get(service, service)
    endpoint = endpoint_for(service, runtime)
    where = endpoint or "real AWS"
    if isinstance(error, BotoConnectionError | HTTPClientError):
        if is_local_endpoint(endpoint):
            todo = (
                "the emulator there stopped or crashed, and its streams and tables are gone: "
                "`coattail status` shows the stack; `coattail down`, `coattail up`, then run again "
                "with a fresh checkpoint"
            )
        else:
            todo = "check the network and the endpoint, then run again (the checkpoint resumes)"
        return f"{name} at {where} is unreachable while {doing} ({error}): {todo}"
    return f"{name} at {where} failed while {doing} after up to {MAX_ATTEMPTS} attempts: {error}"
