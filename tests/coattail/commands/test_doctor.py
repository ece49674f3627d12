"""``coattail doctor``: version comparison with the EMR release, jar checksum checks on real files, the
report's exit status and JSON."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from coattail.cli import app
from coattail.commands.doctor import examine, jar_check, same_version
from pipeline.emr import EMR_RELEASES
from pipeline.jars import Jar, JarState, check_jar, load_manifest

RELEASE = EMR_RELEASES["emr-spark-8.0.0"]
versions = st.lists(st.integers(0, 40), min_size=1, max_size=4).map(lambda parts: ".".join(map(str, parts)))


@pytest.mark.parametrize(
    ("here", "emr", "same"),
    [
        ("4.0.2", "4.0.2", True),
        ("4.0.5", "4.0.2", False),
        ("3.11.7", "3.11", True),
        ("3.12.1", "3.11", False),
        ("17", "17", True),
        ("21", "17", False),
        ("1.10", "1.10.1", False),
        ("4.0.20", "4.0.2", False),
        (None, "4.0.0", False),
    ],
)
def test_same_version(here: str | None, emr: str, same: bool) -> None:
    assert same_version(here, emr) is same


@given(emr=versions, extra=st.lists(st.integers(0, 40), max_size=2))
def test_a_patch_below_what_emr_names_is_the_same(emr: str, extra: list[int]) -> None:
    assert same_version(".".join([emr, *map(str, extra)]), emr)


@given(emr=versions, bump=st.integers(1, 5))
def test_a_different_last_part_differs(emr: str, bump: int) -> None:
    parts = emr.split(".")
    parts[-1] = str(int(parts[-1]) + bump)
    assert not same_version(".".join(parts), emr)


def _jar(content: bytes) -> Jar:
    return Jar("org.example", "thing", "1.0", hashlib.sha256(content).hexdigest())


def test_jar_with_the_recorded_checksum_is_ok(tmp_path: Path) -> None:
    jar = _jar(b"the real jar")
    (tmp_path / jar.file_name).write_bytes(b"the real jar")
    line = jar_check(check_jar(jar, tmp_path))
    assert (line.status, line.version) == ("ok", "1.0")


def test_jar_with_other_bytes_is_a_checksum_mismatch_and_a_failure(tmp_path: Path) -> None:
    jar = _jar(b"the real jar")
    (tmp_path / jar.file_name).write_bytes(b"the real jar, tampered")
    check = check_jar(jar, tmp_path)
    assert check.state is JarState.MISMATCH
    assert check.actual_sha256 == hashlib.sha256(b"the real jar, tampered").hexdigest()
    line = jar_check(check)
    assert line.status == "fail"
    assert check.actual_sha256 in line.detail and jar.sha256 in line.detail and "make jars" in line.detail


def test_missing_jar_is_a_warning_naming_the_fix(tmp_path: Path) -> None:
    line = jar_check(check_jar(_jar(b"x"), tmp_path))
    assert (line.status, line.version) == ("warn", None)
    assert "make jars" in line.detail


def test_without_jars_iceberg_and_delta_differ_from_the_release(tmp_path: Path) -> None:
    checks, differences = examine(RELEASE, tmp_path)
    by_name = {d.component: d for d in differences}
    assert by_name["Iceberg"].here is None and not by_name["Iceberg"].same
    assert by_name["Delta"].here is None and not by_name["Delta"].same
    assert by_name["Spark"].same  # pyspark is pinned to the release's Spark
    jar_lines = [c for c in checks if c.component in {j.artifact for j in load_manifest()}]
    assert len(jar_lines) == len(load_manifest()) and all(c.status == "warn" for c in jar_lines)


def test_cli_json_and_exit_status(tmp_path: Path) -> None:
    manifest = load_manifest()
    iceberg = next(j for j in manifest if j.artifact.startswith("iceberg-spark-runtime"))
    (tmp_path / iceberg.file_name).write_bytes(b"not the jar")
    result = CliRunner().invoke(app, ["doctor", "--jars-dir", str(tmp_path), "--format", "json"])
    assert result.exit_code == 1, result.output  # a wrong checksum is a failure
    report = json.loads(result.stdout)
    assert report["release"] == "emr-spark-8.0.0"
    statuses = {c["component"]: c["status"] for c in report["checks"]}
    assert statuses[iceberg.artifact] == "fail"
    assert statuses["pyspark"] == "ok" and statuses["Python"] == "ok"
    (tmp_path / iceberg.file_name).unlink()
    result = CliRunner().invoke(app, ["doctor", "--jars-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output  # missing jars are optional
    assert "compared with EMR release emr-spark-8.0.0" in result.stdout
    assert "differs from emr-spark-8.0.0: Iceberg, Delta" in result.stdout
