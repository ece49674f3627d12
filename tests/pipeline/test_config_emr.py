"""EMR Serverless sizing in the tier files: a known release, worker sizes EMR allows, initial capacity
within the maximum; errors name the key and say what is allowed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ConfigError
from pipeline.config import TIERS, ConfigLoader, EmrSpark, EmrWorker
from pipeline.emr import EMR_RELEASES, MAX_DISK_GB, MIN_DISK_GB, WORKER_SIZES


@pytest.mark.parametrize("tier", TIERS)
def test_every_tier_names_emr_spark_8_and_fits_its_maximum(tier: str) -> None:
    emr = ConfigLoader().load(tier, env={}).spark.emr
    assert emr.release == "emr-spark-8.0.0"
    initial = emr.initial_capacity
    assert initial.drivers >= 1 and initial.executors >= 1
    needed = emr.driver.vcpu * initial.drivers + emr.executor.vcpu * initial.executors
    assert needed <= emr.maximum_capacity.vcpu


def test_tiers_grow_in_capacity() -> None:
    capacity = [ConfigLoader().load(t, env={}).spark.emr.maximum_capacity.vcpu for t in TIERS]
    assert capacity == sorted(capacity) and len(set(capacity)) == len(TIERS)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("spark.emr.executor.vcpu", 3, "vcpu 3 is not a worker size; EMR Serverless allows 1, 2, 4, 8, 16"),
        ("spark.emr.executor.memory_gb", 40, "memory_gb 40 does not fit a 4-vCPU worker; allowed: 8 to 30"),
        ("spark.emr.driver.disk_gb", 10, "disk_gb 10 is outside"),
        ("spark.emr.release", "emr-7.5.0", "unknown EMR release 'emr-7.5.0'; known: emr-spark-8.0.0"),
        ("spark.emr.initial_capacity.executors", 50, "initial_capacity needs"),
        ("spark.emr.instance_type", "m6g.xlarge", "spark.emr.instance_type: unknown key"),
    ],
)
def test_bad_sizes_are_refused_with_the_rule(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ConfigLoader().load("small", env={}, overrides={key: value})
    # the override is named as the origin, beside the tier file when the check spans the section
    assert f"--set {key}={value}" in str(caught.value)
    assert "spark.emr" in str(caught.value)
    assert message in str(caught.value)


@given(vcpu=st.sampled_from(sorted(WORKER_SIZES)), memory_gb=st.integers(1, 130), disk_gb=st.integers(1, 250))
def test_worker_accepted_exactly_when_emr_allows_it(vcpu: int, memory_gb: int, disk_gb: int) -> None:
    sizes = WORKER_SIZES[vcpu]
    allowed = (
        sizes.min_memory_gb <= memory_gb <= sizes.max_memory_gb
        and (memory_gb - sizes.min_memory_gb) % sizes.memory_step_gb == 0
        and MIN_DISK_GB <= disk_gb <= MAX_DISK_GB
    )
    try:
        EmrWorker(vcpu=vcpu, memory_gb=memory_gb, disk_gb=disk_gb)
    except ValueError:
        assert not allowed
    else:
        assert allowed


def test_defaults_are_a_valid_application() -> None:
    assert EmrSpark().release in EMR_RELEASES
