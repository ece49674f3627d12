"""The packaged job's arguments: its config file, how it reaches AWS, the submission's keyed mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from pipeline.config import ConfigLoader, RuntimeSettings
from pipeline.jobs.streaming import Reporter, load_job_config, parse_args


def job_args(tmp_path: Path, *extra: str) -> list[str]:
    config = ConfigLoader().load("medium", env={})
    (tmp_path / "config.json").write_text(config.model_dump_json(exclude={"runtime"}))
    return ["--config", str(tmp_path / "config.json"), "--checkpoint", str(tmp_path / "ckpt"), *extra]


def test_the_config_file_comes_back_as_the_tier_with_the_job_s_runtime(tmp_path: Path) -> None:
    runtime = RuntimeSettings(aws_endpoint="http://127.0.0.1:5999", state_dir=tmp_path / "state")
    (tmp_path / "runtime.json").write_text(runtime.model_dump_json())
    args = parse_args(job_args(tmp_path, "--runtime", str(tmp_path / "runtime.json")))
    config = load_job_config(args, None)
    assert config.model_dump(exclude={"runtime"}) == ConfigLoader().load("medium", env={}).model_dump(
        exclude={"runtime"}
    )
    assert config.runtime == runtime


@pytest.mark.parametrize("mode", ["driver", "state_store"])
def test_the_submission_s_keyed_mode_wins_over_the_file(tmp_path: Path, mode: str) -> None:
    config = load_job_config(parse_args(job_args(tmp_path)), mode)
    assert config.spark.keyed_state == mode


def test_a_bad_keyed_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="driver or state_store"):
        load_job_config(parse_args(job_args(tmp_path)), "everywhere")


def test_real_aws_only_by_the_flag_never_from_a_runtime_file(tmp_path: Path) -> None:
    real = RuntimeSettings(profile="aws", allow_real_aws=True)
    (tmp_path / "runtime.json").write_text(real.model_dump_json())
    with pytest.raises(ConfigError, match="--allow-real-aws"):
        load_job_config(parse_args(job_args(tmp_path, "--runtime", str(tmp_path / "runtime.json"))), None)
    flagged = load_job_config(parse_args(job_args(tmp_path, "--profile", "aws", "--allow-real-aws")), None)
    assert flagged.runtime.profile == "aws" and flagged.runtime.allow_real_aws
    unflagged = load_job_config(parse_args(job_args(tmp_path, "--profile", "aws")), None)
    assert not unflagged.runtime.allow_real_aws


def test_a_file_that_is_no_config_is_named(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"tier": "medium"}')
    args = parse_args(["--config", str(tmp_path / "config.json"), "--checkpoint", str(tmp_path)])
    with pytest.raises(ConfigError, match="not a resolved tier config"):
        load_job_config(args, None)


def test_the_reporter_sees_the_stop_file(tmp_path: Path) -> None:
    reporter = Reporter(tmp_path / "report")
    assert not reporter.stop_requested()
    (tmp_path / "report" / "stop").touch()
    assert reporter.stop_requested()
    assert not Reporter(None).stop_requested()
