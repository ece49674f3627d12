"""Installing Spark's jars with Maven (``make jars``): verified before they land, nothing fetched twice, one
clear message without Maven. Maven runs offline (``-o``, from ~/.m2), so no test leaves the machine."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.jars import STAMP_NAME, JarChecksumError, JarsUnavailable, install_jars
from pipeline.jars import Jar, installed_jars, load_manifest, sha256_of

MAVEN = shutil.which("mvn")
# The smallest jar of the real manifest; `make install` put it in ~/.m2 when Maven Central was reachable.
SMALL = next(j for j in load_manifest() if j.artifact == "delta-storage")
IN_LOCAL_REPO = (
    Path.home() / ".m2" / "repository" / SMALL.group.replace(".", "/") / SMALL.artifact / SMALL.version
    / SMALL.file_name
)
needs_maven = pytest.mark.skipif(
    MAVEN is None or not IN_LOCAL_REPO.is_file(), reason="needs mvn and ~/.m2 filled by `make install`"
)


def _manifest(tmp_path: Path, *jars: Jar) -> Path:
    path = tmp_path / "spark-jars.json"
    path.write_text(json.dumps({"jars": [{"coordinate": j.coordinate, "sha256": j.sha256} for j in jars]}))
    return path


def test_without_maven_one_message_names_every_missing_jar(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, *load_manifest())
    with pytest.raises(JarsUnavailable) as caught:
        install_jars(tmp_path / "jars", manifest, mvn=str(tmp_path / "no-such-mvn"))
    message = str(caught.value)
    assert all(j.coordinate in message for j in load_manifest())
    assert "make jars" in message and "Everything else works" in message
    assert not (tmp_path / "jars" / STAMP_NAME).exists()


def test_present_jars_are_not_fetched_again(tmp_path: Path) -> None:
    jars_dir = tmp_path / "jars"
    jars_dir.mkdir()
    jar_file = jars_dir / "thing-1.0.jar"
    jar_file.write_bytes(b"a jar")
    manifest = _manifest(tmp_path, Jar("org.example", "thing", "1.0", sha256_of(jar_file)))
    # an mvn that does not exist proves Maven is not run
    assert install_jars(jars_dir, manifest, mvn=str(tmp_path / "no-such-mvn")) == []
    assert (jars_dir / STAMP_NAME).is_file()
    assert installed_jars(jars_dir, manifest) == [jar_file]


@pytest.mark.skipif(MAVEN is None, reason="needs mvn")
def test_unreachable_artifact_gives_the_clear_message(tmp_path: Path) -> None:
    ghost = Jar("org.example.coattail", "not-published", "0.0.1", "0" * 64)
    with pytest.raises(JarsUnavailable) as caught:
        install_jars(tmp_path / "jars", _manifest(tmp_path, ghost), maven_args=["-o"])
    assert ghost.coordinate in str(caught.value) and "Maven could not fetch them" in str(caught.value)
    assert not list((tmp_path / "jars").glob("*.jar"))


@needs_maven
def test_fetch_verifies_and_a_second_install_fetches_nothing(tmp_path: Path) -> None:
    jars_dir = tmp_path / "jars"
    manifest = _manifest(tmp_path, SMALL)
    assert install_jars(jars_dir, manifest, maven_args=["-o"]) == [SMALL]
    assert sha256_of(jars_dir / SMALL.file_name) == SMALL.sha256
    assert (jars_dir / STAMP_NAME).read_text() == f"{SMALL.sha256}  {SMALL.file_name}\n"
    assert install_jars(jars_dir, manifest, mvn=str(tmp_path / "no-such-mvn")) == []


@needs_maven
def test_a_jar_with_another_checksum_is_not_installed(tmp_path: Path) -> None:
    jars_dir = tmp_path / "jars"
    wrong = Jar(SMALL.group, SMALL.artifact, SMALL.version, "f" * 64)
    with pytest.raises(JarChecksumError, match=SMALL.coordinate):
        install_jars(jars_dir, _manifest(tmp_path, wrong), maven_args=["-o"])
    assert not (jars_dir / SMALL.file_name).exists()
    assert not (jars_dir / STAMP_NAME).exists()


def test_install_step_without_maven_warns_once_and_succeeds(tmp_path: Path) -> None:
    """What `make install` runs, on a machine without Maven: exit 0 and one line naming what is missing."""
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path)}  # a PATH with no mvn on it
    done = subprocess.run(
        [sys.executable, "-m", "infra.jars", "--dir", str(tmp_path / "jars")],
        capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parents[2], check=False,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("warning: Spark's jars are not installed") and "mvn" in lines[0]
    assert all(j.coordinate in done.stderr for j in load_manifest())
    assert "Traceback" not in done.stderr
