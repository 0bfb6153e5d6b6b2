"""Per-rule resources come from the experiment config (sdclr/pipeline/resources.py): defaults per
rule,
unknown rules and keys refused, GPUs matching pretrain.gpus, retries with more time and
memory, and the site's partitions and GPU model only where a rule names none."""

import re
from pathlib import Path

import pytest
import yaml

from sdclr.pipeline.config import ConfigError, normalize_config
from sdclr.pipeline.resources import (
    RULE_DEFAULTS,
    JobResources,
    combined,
    load_resources,
    scheduler_resources,
    threads,
)

TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"


def base_config() -> dict:
    return yaml.safe_load(TINY.read_text())


def test_rules_and_keys_left_out_take_their_rules_defaults():
    """A config's `resources` entry overrides its keys only; the rest are the rule's defaults."""
    resources = load_resources({"pretrain": {"mem_mb": 8000}})
    assert set(resources) == set(RULE_DEFAULTS)
    assert resources["pretrain"] == JobResources(gpus=1, cpus_per_gpu=8, mem_mb=8000, runtime=480)
    assert resources["make_split"] == JobResources(mem_mb=16000, runtime=30)


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"pretrian": {}}, "resources.pretrian: unknown key; known keys here: ['analyse'"),
        ({"pretrain": {"memory": 1}}, "unknown key"),
        ({"pretrain": {"mem_mb": 0}}, "resources.pretrain.mem_mb"),
    ],
)
def test_a_wrong_resources_entry_is_refused_naming_it(resources, message):
    """A typo in a rule or key, or a value out of bounds, stops the run naming it."""
    config = {**base_config(), "resources": resources}
    with pytest.raises(ConfigError, match=re.escape(message)):
        normalize_config(config)


def test_gpus_of_the_pretraining_job_must_match_a_multi_gpu_method():
    """pretrain.gpus = 4 (4 torchrun processes) needs a job with 4 GPUs, said in the config."""
    config = base_config()
    config["datasets"]["fmnist_lt"]["pretrain"]["gpus"] = 4
    with pytest.raises(ConfigError, match="resources.pretrain.gpus is 0 but method"):
        normalize_config(config)
    config["resources"]["pretrain"]["gpus"] = 4
    normalize_config(config)


def test_retries_get_attempt_times_the_runtime_and_half_again_the_memory_each(monkeypatch):
    monkeypatch.delenv("SDCLR_SLURM_PARTITION", raising=False)
    job = JobResources(mem_mb=1000, runtime=10)
    assert scheduler_resources(job, 1) == {"mem_mb": 1000, "runtime": 10}
    assert scheduler_resources(job, 3) == {"mem_mb": 2000, "runtime": 30}
    assert threads(JobResources(cpus=3)) == 3


def test_site_partitions_and_gpu_model_apply_where_the_config_names_none(monkeypatch):
    monkeypatch.setenv("SDCLR_SLURM_PARTITION", "cpu")
    monkeypatch.setenv("SDCLR_SLURM_GPU_PARTITION", "gpu")
    monkeypatch.setenv("SDCLR_SLURM_GPU_MODEL", "a100")
    gpu_job = JobResources(gpus=2, cpus_per_gpu=4)
    assert scheduler_resources(gpu_job) == {
        "mem_mb": 4000,
        "runtime": 30,
        "gpu": 2,
        "cpus_per_gpu": 4,
        "gpu_model": "a100",
        "slurm_partition": "gpu",
    }
    assert threads(gpu_job) == 4  # per process
    assert scheduler_resources(JobResources())["slurm_partition"] == "cpu"
    assert scheduler_resources(JobResources(partition="big"))["slurm_partition"] == "big"


def test_a_job_over_several_datasets_asks_the_most_of_each():
    a, b = JobResources(mem_mb=1000, runtime=50, partition="x"), JobResources(mem_mb=3000)
    assert combined([a, b]) == JobResources(mem_mb=3000, runtime=50, partition="")
    assert combined([a]) == a
