"""The features stage: one extraction of a model's dense test and pool features, read by every
probe and analysis of the model, with records identical to recomputing them."""

import json

import pytest
import torch
import yaml

import sdclr.analyses.pie
import sdclr.probes.base
import sdclr.probes.bcl_probe
import sdclr.probes.linear
from sdclr.errors import InputError
from sdclr.pipeline.dag import STAGES
from sdclr.pipeline.stages import analyse, features, probe
from sdclr.probes.feature_file import read_features
from sdclr.torch_files import torch_load
from tests.analyses.test_analysis import _saved
from tests.helpers import toy_dataset, toy_split
from tests.pipeline.test_config import ROOT

PROBES = ["linear", "fewshot", "knn", "mean", "mean_fewshot", "bcl_fullshot"]
SHORT = {"epochs": 3, "milestones": [2], "augment": False}


def _settings(name: str) -> dict:
    return {
        "dataset": "toy",
        "probe": name,
        "linear_probe": SHORT,
        "fewshot_probe": SHORT,
        "knn_probe": {"k": 5},
        "bcl_fullshot_probe": {"epochs": 2},
        "groups": {"kind": "thirds"},
        "crop_size": 10,
    }


ANALYSIS = {
    "dataset": "toy",
    "analyses": ["pie", "geometry"],
    "pie_analysis": {"prune_ratio": 0.7},
    "knn_probe": {},
    "groups": {"kind": "thirds"},
    "crop_size": 10,
}


@pytest.fixture
def model_jobs(tmp_path, monkeypatch):
    """Run every stage function of one model (features, then the probes and the analysis,
    reading the feature file or not); return the records and the rows of every extraction."""
    dataset = toy_dataset()
    split = toy_split(dataset)
    model = tmp_path / "model.pt"
    _saved(model, "sdclr", {"prune_ratio": 0.5})
    for stage in (features, probe, analyse):
        monkeypatch.setattr(stage, "job_inputs", lambda *_: (dataset, split, torch.device("cpu")))
    rows: list[int] = []
    for module in (
        sdclr.probes.base,
        sdclr.probes.linear,
        sdclr.probes.bcl_probe,
        sdclr.analyses.pie,
    ):
        real = module.extract_features

        def counted(backbone, images, *args, real=real, **kwargs):
            rows.append(images.shape[0])
            return real(backbone, images, *args, **kwargs)

        monkeypatch.setattr(module, "extract_features", counted)

    def run(shared: bool) -> dict:
        file = tmp_path / "features.pt" if shared else None
        if shared:
            features.features_stage("d", "s", model, {"crop_size": 10}, 0, file)
        records = {
            name: probe.probe_stage("d", "s", model, _settings(name), 0, tmp_path / f"{name}.json",
                                    progress=False, features=file)
            for name in PROBES
        }  # fmt: skip
        records["analysis"] = analyse.analysis_stage(
            "d", "s", model, ANALYSIS, 0, tmp_path / "analysis.json", features=file
        )
        for record in records.values():
            record.pop("provenance")
        return records

    return run, rows, len(dataset.test_labels), split, tmp_path


def test_the_probes_and_analyses_of_a_model_read_one_feature_file(model_jobs):
    """Without the file, every probe and the analysis extract the test features again (6
    probes, the analysis' dense pass and PIE's pruned one); with it, the test set passes
    through the dense network once (the features stage) and the pruned one once (PIE), and
    every record is identical."""
    run, rows, n_test, split, tmp_path = model_jobs
    recomputed = run(shared=False)
    assert rows.count(n_test) == len(PROBES) + 2
    rows.clear()
    shared = run(shared=True)
    assert rows.count(n_test) == 2
    pool = len(split["indices"]["train"])
    assert rows.count(pool) == 1 + 1  # the features stage; PIE's pruned network
    assert json.dumps(shared, sort_keys=True) == json.dumps(recomputed, sort_keys=True)  # NaN
    stored = torch_load(tmp_path / "features.pt")
    assert stored["test"].dtype == torch.float32 and stored["test"].shape[0] == n_test
    assert stored["pool"].shape[0] == pool


def test_a_feature_file_of_another_crop_or_pool_is_refused(model_jobs):
    run, _, _, split, tmp_path = model_jobs
    run(shared=True)
    with pytest.raises(InputError, match="px crops"):
        read_features(tmp_path / "features.pt", split, 12)
    other = {**split, "indices": {**split["indices"], "train": split["indices"]["train"][1:]}}
    with pytest.raises(InputError, match="another split's probe pool"):
        read_features(tmp_path / "features.pt", other, 10)


def test_the_slurm_profile_groups_the_stages_the_table_groups():
    """The SLURM profile's ``groups`` are the stage table's (a model's features, probes and
    analyses as one cluster job), and the report stages are local rules."""
    text = (ROOT / "workflow" / "profiles" / "slurm" / "config.yaml").read_text()
    groups = yaml.safe_load(text.split("groups:", 1)[1].split("\n\n", 1)[0])
    assert sorted(groups) == sorted(f"{s.name}={s.group}" for s in STAGES if s.group)
    local = {s.name for s in STAGES if s.local}
    assert {"make_tables", "make_figures", "compare_with_paper", "summarize"} <= local
