"""Security of the local stack: no real credential reaches a child process, and ``coattail status`` never
contacts a non-local endpoint recorded in ``stack.json`` without the real-AWS guard."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from infra import emulator, stack
from infra.provision import StackSpec
from pipeline.aws import local_process_environment
from pipeline.config import ConfigLoader, RuntimeSettings

FAKE = {
    "AWS_ACCESS_KEY_ID": "AKIAREALREALREAL",
    "AWS_SECRET_ACCESS_KEY": "real-secret",
    "AWS_SESSION_TOKEN": "real-session-token",
    "AWS_SECURITY_TOKEN": "real-security-token",
    "AWS_PROFILE": "production",
    "AWS_SHARED_CREDENTIALS_FILE": "/home/me/.aws/credentials",
    "AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/token",
    "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/prod",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.2/creds",
}


def _assert_scrubbed(env: dict[str, str]) -> None:
    leaked = {k: v for k, v in env.items() if v in FAKE.values()}
    assert not leaked, leaked
    assert env["AWS_ACCESS_KEY_ID"] == "testing" and env["AWS_EC2_METADATA_DISABLED"] == "true"
    assert env["AWS_DEFAULT_REGION"] == "eu-west-1"  # the region is not a secret and is kept


@pytest.fixture
def real_looking_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in FAKE.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")


@pytest.mark.integration
def test_the_emulator_inherits_no_real_credentials(real_looking_credentials: None, tmp_path: Path) -> None:
    moto = emulator.start("moto", tmp_path)
    try:
        _assert_scrubbed(psutil.Process(moto.pid).environ())
    finally:
        emulator.server_process("moto", tmp_path).stop()


def _child_env(queue: multiprocessing.Queue[dict[str, str]]) -> None:
    import os

    queue.put(dict(os.environ))


def test_a_local_runs_children_inherit_no_real_credentials(real_looking_credentials: None) -> None:
    """What ``coattail run`` does for a local profile: subprocesses (Spark's JVM is one) and spawned
    Python processes (the replay) see dummy keys; the caller's environment comes back afterwards."""
    with local_process_environment():
        out = subprocess.run(
            [sys.executable, "-c", "import json, os; print(json.dumps(dict(os.environ)))"],
            capture_output=True, text=True, check=True,
        )
        context = multiprocessing.get_context("spawn")
        queue: multiprocessing.Queue[dict[str, str]] = context.Queue()
        child = context.Process(target=_child_env, args=(queue,))
        child.start()
        spawned = queue.get(timeout=60)
        child.join()
    _assert_scrubbed(json.loads(out.stdout))
    _assert_scrubbed(spawned)
    import os

    assert os.environ["AWS_SESSION_TOKEN"] == FAKE["AWS_SESSION_TOKEN"]


def _record_external(state_dir: Path, endpoint: str) -> None:
    config = ConfigLoader().load("small", env={})
    state = stack.StackState(
        tier="small", profile="aws", region="us-east-1", endpoint=endpoint, service_endpoints={},
        processes={}, spec=StackSpec.from_config(config),
    )
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / stack.STATE_FILE).write_text(state.to_json())


def test_status_does_not_contact_a_recorded_non_local_endpoint_without_the_guard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    contacted: list[str] = []

    def probe(url: str) -> bool:
        contacted.append(url)
        return False

    monkeypatch.setattr(stack, "http_answers", probe)
    remote = "https://kinesis.us-east-1.amazonaws.com"
    _record_external(tmp_path, remote)

    report = stack.status(RuntimeSettings(state_dir=tmp_path))
    assert contacted == []
    assert [(p.kind, p.state) for p in report.processes] == [("external", "unchecked")]
    assert "--allow-real-aws" in report.summary() and remote in report.summary()
    assert not report.healthy and stack.current_runtime(RuntimeSettings(state_dir=tmp_path)) is None

    opted_in = RuntimeSettings(state_dir=tmp_path, profile="aws", allow_real_aws=True)
    assert stack.status(opted_in, resources=False).processes[0].state == "unhealthy"
    assert contacted == [remote]
