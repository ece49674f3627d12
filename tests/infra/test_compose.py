"""docker-compose.yml: LocalStack pinned to a token-free release, moto beside it, loopback ports only."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def _services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


def test_localstack_is_pinned_to_a_release_without_auth_token() -> None:
    localstack = _services()["localstack"]
    image, _, tag = localstack["image"].partition(":")
    assert image == "localstack/localstack"
    assert tag.startswith("3."), "LocalStack 4 and later images ask for an auth token"
    assert localstack["environment"]["KINESIS_LATENCY"] == "0"
    assert set(localstack["environment"]["SERVICES"].split(",")) == {"kinesis", "dynamodb", "s3"}


def test_moto_serves_glue_beside_localstack() -> None:
    image, _, tag = _services()["moto"]["image"].partition(":")
    assert image == "motoserver/moto"
    assert tag and tag != "latest"


def test_every_image_is_pinned_to_a_full_release() -> None:
    # a floating tag (latest, 3, 3.8) can pull an image that asks for a token or changes the APIs
    for name, service in _services().items():
        _, _, tag = service["image"].partition(":")
        assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"{name}: image {service['image']!r} is not pinned"


def test_every_port_is_published_on_loopback_only() -> None:
    ports = [port for service in _services().values() for port in service.get("ports", [])]
    assert ports
    assert all(str(port).startswith("127.0.0.1:") for port in ports)


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


@pytest.mark.skipif(
    _compose_command() is None, reason="neither `docker compose` nor `docker-compose` is installed"
)
def test_compose_config_validates() -> None:
    command = _compose_command()
    assert command is not None
    result = subprocess.run([*command, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
