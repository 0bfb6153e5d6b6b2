"""Config validation: the schema and the code's own checks stop a bad config with its key."""

import copy
import re
from pathlib import Path

import pytest
import yaml

from sdclr.pipeline.config import (
    ConfigError,
    job_settings,
    load_config,
    normalize_config,
    pretrain_settings,
    probe_settings,
    report_settings,
    validate_config,
)
from sdclr.pipeline.config_files import expand_extends, load_raw_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def config():
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def test_embedded_default_is_valid(config):
    """config/config.yaml passes the schema and the method checks; normalising gives every
    dataset the experiment's methods (its removal runs merged in after them), splits and
    seeds."""
    validate_config(config)
    normalized = load_config(ROOT / "config" / "config.yaml")
    entry = normalized["datasets"]["fmnist_lt"]
    removal_runs = [run["name"] for run in config["removal_methods"]]
    assert list(entry["methods"]) == list(config["methods"]) + removal_runs
    assert {m: entry["methods"][m] for m in config["methods"]} == config["methods"]
    assert entry["splits"] == config["splits"]
    assert (
        entry["seeds"] == config["seeds"]
        and entry["model"] == config["datasets"]["fmnist_lt"]["model"]
    )


def test_the_embedded_configs_show_every_method_family():
    """The demo has one row per family (SimCLR, SDCLR, BCL-D, SDCLR + TS, the difficult
    examples' margin and temperature scaling in one row, and removal); the variants config runs
    every variant and the difficult pairs' control (SimCLR at the band's t rho = 0.1), SDCLR +
    COLT too, on the demo's dataset settings."""
    demo_entry = load_config(ROOT / "config" / "config.yaml")["datasets"]["fmnist_lt"]
    demo = demo_entry["methods"]
    assert {m.get("label") for m in demo.values()} >= {
        "SimCLR",
        "SDCLR",
        "BCL-D",
        "SDCLR + TS",
        "SimCLR + difficult pairs",
        "SimCLR - difficult",
    }
    assert demo["bcl_d"]["pretrain"]["weight_decay"] == 1e-4  # BCL's README for BCL-D
    assert demo["bcl_d"]["bcl"]["magnitude_jitter"]  # BCL's code for k = 2
    pairs = demo["simclr_difficult"]["difficult_examples"]
    assert pairs["margin"] > 0 and pairs["temperature_ratio"] < 1  # both switches on
    variants = load_config(ROOT / "config" / "variants.yaml")["datasets"]["fmnist_lt"]
    for key in ("longtail", "model", "augmentation", "pretrain"):
        assert variants[key] == demo_entry[key], key
    labels = {m.get("label") for m in variants["methods"].values()}
    assert labels == {
        "SimCLR",
        "SDCLR",
        "BCL-I",
        "BCL-D",
        "SimCLR + TS",
        "SDCLR + TS",
        "SimCLR + margin",
        "SimCLR + temp. scaling",
        "SDCLR + margin + temp. scaling + TS",
        "SimCLR, t = 0.1 (control)",
        "SimCLR - difficult",
        "SimCLR + DE (all three)",
        "SDCLR + DE (all three)",
        "SDCLR + COLT",
        "SDCLR + GH",
        "SimCLR + difficult pairs",
    }


def test_the_gpu_validation_config_is_the_papers_cifar_settings_on_fashion_mnist_lt():
    """config/validation/fmnist_lt_gpu.yaml validates and runs every method family (SimCLR,
    SDCLR, BCL-D, SDCLR + TS, SDCLR + difficult pairs, + GH, + COLT) at the paper's CIFAR
    settings (full-width ResNet-18, 32 px crops, batch 512, lr 0.5, t 0.2 where no schedule
    sets it, p 0.9) for 300 epochs on 3 splits whose D_i is CIFAR-10-LT's size."""
    from sdclr.data.splits import longtail_counts

    raw = yaml.safe_load((ROOT / "config" / "validation" / "fmnist_lt_gpu.yaml").read_text())
    entry = load_config(ROOT / "config" / "validation" / "fmnist_lt_gpu.yaml")["datasets"]
    entry = entry["fmnist_lt"]
    assert entry["splits"] == [1, 2, 3]
    families = {"bcl", "temperature_schedule", "difficult_examples", "geometric_harmonization"}
    extensions = {key for m in raw["methods"].values() for key in m} & (families | {"colt"})
    assert extensions == families | {"colt"}
    algorithms = {m.get("algorithm", name) for name, m in raw["methods"].items()}
    assert algorithms == {"simclr", "sdclr"}
    for name, method in raw["methods"].items():
        hyper = method["hyperparameters"]
        assert "temperature_schedule" in method or hyper["temperature"] == 0.2, name
        assert method.get("algorithm", name) == "simclr" or hyper["prune_ratio"] == 0.9, name
    assert entry["model"]["width"] == 1.0 and entry["augmentation"]["crop_size"] == 32
    pretrain = entry["pretrain"]
    assert (pretrain["epochs"], pretrain["batch_size"], pretrain["lr"]) == (300, 512, 0.5)
    longtail = entry["longtail"]
    assert sum(longtail_counts(longtail["n_max"], 10, longtail["imbalance_ratio"])) == 11_165


def test_experiments_list_is_the_union_of_its_grids(tmp_path):
    """A config of `experiments:` runs every listed experiment with its own methods and splits;
    other keys beside the list, or one dataset in two experiments, are errors."""
    normalized = normalize_config(
        {"experiments": ["config/paper/cifar10_lt.yaml", "config/paper/imagenet100_lt.yaml"]}
    )
    assert set(normalized["datasets"]) == {"cifar10_lt", "imagenet100_lt"}
    assert normalized["datasets"]["imagenet100_lt"]["splits"] == [1]
    assert "simclr_balanced" in normalized["datasets"]["cifar10_lt"]["methods"]
    assert "simclr_balanced" not in normalized["datasets"]["imagenet100_lt"]["methods"]
    with pytest.raises(ConfigError, match="move \\['seeds'\\]"):
        normalize_config({"experiments": ["config/config.yaml"], "seeds": [0]})
    with pytest.raises(ConfigError, match="appears in two experiments"):
        normalize_config({"experiments": ["config/config.yaml", "config/config.yaml"]})


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.update(sedes=[0]), "sedes"),
        (
            lambda c: c["datasets"]["fmnist_lt"]["pretrain"].update(epochs="ten"),
            r"datasets\.fmnist_lt\.pretrain\.epochs",
        ),
        (
            lambda c: c["datasets"]["fmnist_lt"]["pretrain"].update(epoch=3),
            r"datasets\.fmnist_lt\.pretrain\.epoch: unknown key; known keys here: \[.*'epochs'",
        ),
        (
            lambda c: c["datasets"]["fmnist_lt"]["source"].update(name="mnist"),
            r"datasets\.fmnist_lt\.source\.name",
        ),
        (
            lambda c: c["methods"].update(byol={}),
            r"methods\.byol: unknown method 'byol'; "
            r"known methods: sdclr, simclr",
        ),
        (
            lambda c: c["methods"]["sdclr"]["hyperparameters"].update(prune=0.5),
            r"methods\.sdclr\.hyperparameters.*prune",
        ),
        (
            lambda c: c["datasets"]["fmnist_lt"]["augmentation"].update(flip_p=2),
            r"augmentation\.flip_p",
        ),
    ],
)
def test_bad_config_names_the_key(config, edit, message):
    """An unknown key, a wrong type, an unknown dataset source, an unknown method or a wrong
    hyperparameter stops validation with a message naming the key."""
    bad = copy.deepcopy(config)
    edit(bad)
    with pytest.raises(ConfigError, match=message):
        validate_config(bad)


def test_job_settings_hold_only_what_the_job_depends_on(config):
    """Pretrain settings change with that method's hyperparameters only; probe settings don't
    change with any method's."""
    other = copy.deepcopy(config)
    other["methods"]["sdclr"]["hyperparameters"]["prune_ratio"] = 0.5
    config, other = normalize_config(config), normalize_config(other)
    assert pretrain_settings(config, "fmnist_lt", "simclr") == pretrain_settings(
        other, "fmnist_lt", "simclr"
    )
    assert pretrain_settings(config, "fmnist_lt", "sdclr") != pretrain_settings(
        other, "fmnist_lt", "sdclr"
    )
    assert probe_settings(config, "fmnist_lt", "linear") == probe_settings(
        other, "fmnist_lt", "linear"
    )
    assert pretrain_settings(config, "fmnist_lt", "sdclr")["method"]["algorithm"] == "sdclr"


def test_a_label_is_presentation_not_a_job_setting(config):
    """Renaming a method changes only the report's settings, never a job's: no retraining."""
    other = copy.deepcopy(config)
    other["methods"]["sdclr"]["label"] = "SDCLR (p=0.9)"
    config, other = normalize_config(config), normalize_config(other)
    for job in ("dataset", "split", "pretrain/sdclr", "pretrain/simclr", "probe/linear"):
        assert job_settings(config, "fmnist_lt", job) == job_settings(other, "fmnist_lt", job)
    assert report_settings(other)["labels"]["methods"]["sdclr"] == "SDCLR (p=0.9)"
    assert report_settings(config) != report_settings(other)


def test_missing_config_file(tmp_path):
    """A config path that does not exist is named."""
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_the_schema_file_is_the_one_generated_from_the_settings():
    """workflow/schemas/config.schema.yaml is config_schema() written out: a setting added to
    a settings dataclass appears there (run `make schema`), and nothing is declared twice."""
    from sdclr.pipeline.schema import SCHEMA_PATH, schema_text

    assert SCHEMA_PATH.read_text() == schema_text(), "stale schema file: run `make schema`"


def test_every_setting_has_a_type_and_a_sentence():
    """Each field of each settings section carries its documentation into the schema."""
    from sdclr.pipeline.schema import config_schema

    defs = config_schema()["$defs"]
    sections = {name: defs[name] for name in ("longtail", "model", "augmentation", "pretrain")}
    sections |= {k: v for k, v in defs["dataset"]["properties"].items() if k.endswith("_probe")}
    sections |= {k: v for k, v in defs["method"]["properties"].items() if "properties" in v}
    assert {"linear_probe", "knn_probe", "kshot_100_probe", "bcl", "temperature_schedule"} <= set(
        sections
    )
    for section, schema in sections.items():
        for key, spec in schema["properties"].items():
            if key != "reference_splits":
                assert spec.get("description"), f"{section}.{key} has no doc"


def test_settings_errors_name_the_key_and_the_bound():
    """A value outside a setting's declared bounds names the full key path and the bound."""
    from sdclr.settings import load
    from sdclr.training.loop import PretrainConfig

    with pytest.raises(ConfigError, match=r"datasets\.x\.pretrain\.lr: 0 is less than or equal"):
        load(PretrainConfig, {"epochs": 1, "lr": 0}, "datasets.x.pretrain")
    with pytest.raises(ConfigError, match=r"datasets\.x\.pretrain: 'epochs' is a required"):
        load(PretrainConfig, {}, "datasets.x.pretrain")


def test_a_config_extends_others_and_errors_name_the_file_that_set_the_key(tmp_path):
    """`extends:` merges the named files first (mappings key by key, anything else replaced),
    then the file's own keys; the merged config is validated as one, and an error names the
    file that set the key; a file that extends itself back is refused."""
    tiny = yaml.safe_load((Path(__file__).parents[1] / "configs" / "tiny.yaml").read_text())
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(tiny))
    child = tmp_path / "child.yaml"
    child.write_text(
        yaml.safe_dump(
            {
                "extends": [str(base)],
                "splits": [1],
                "methods": {"sdclr": {"label": "SDCLR (child)"}},
            }
        )
    )
    merged = load_raw_config(child)
    assert merged["splits"] == [1] and "extends" not in merged
    assert merged["methods"]["sdclr"] == {**tiny["methods"]["sdclr"], "label": "SDCLR (child)"}
    assert set(merged["methods"]) == {"simclr", "sdclr"}
    assert load_config(child)["datasets"]["fmnist_lt"]["splits"] == [1]
    _, origins = expand_extends(yaml.safe_load(child.read_text()), str(child))
    assert origins["splits"] == str(child) and origins["datasets.fmnist_lt.source.name"] == str(
        base
    )
    tiny["datasets"]["fmnist_lt"]["pretrain"]["lr"] = -1.0  # a bad value in the base file
    base.write_text(yaml.safe_dump(tiny))
    with pytest.raises(ConfigError, match=rf"pretrain\.lr: .* \(set in {re.escape(str(base))}\)"):
        load_config(child)
    base.write_text(yaml.safe_dump({**tiny, "extends": [str(child)]}))
    with pytest.raises(ConfigError, match="extends it back"):
        load_config(child)


def test_shared_runs_are_written_once():
    """The CIFAR paper configs extend one base (the runs on SDCLR's protocol, the removal
    family, seeds, splits, resources) and redefine none of its runs; the variants extend the
    demo and add only what the demo lacks."""
    paper = ROOT / "config" / "paper"
    base = yaml.safe_load((paper / "cifar_base.yaml").read_text())
    assert len(base["methods"]) >= 13
    for name in ("cifar10_lt", "cifar100_lt"):
        own = yaml.safe_load((paper / f"{name}.yaml").read_text())
        assert own["extends"] == ["config/paper/cifar_base.yaml"], name
        assert not set(own["methods"]) & set(base["methods"]), name
        runs = load_config(paper / f"{name}.yaml")["datasets"][name]["methods"]
        assert set(base["methods"]) <= set(runs), name
    variants = yaml.safe_load((ROOT / "config" / "variants.yaml").read_text())
    demo = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    assert variants["extends"] == ["config/config.yaml"] and "datasets" not in variants
    assert not set(variants["methods"]) & set(demo["methods"])
