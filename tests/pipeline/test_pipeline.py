"""One declaration of the stages, and every job bound to the settings and code that make its
result (sdclr/pipeline/): dvc.yaml is the table's, the Snakefile loads no torch, a settings
file holds every default and its job's code, and a change reruns exactly the jobs it touches
under Snakemake and DVC, while a note or another method's file reruns nothing."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sdclr.pipeline.config_files import load_raw_config
from sdclr.pipeline.dag import STAGES, stage_outputs
from sdclr.pipeline.dvc import generate
from sdclr.pipeline.resolve import SETTINGS_FORMAT, resolve
from sdclr.training.loop import PretrainConfig
from tests.checkout import ROOT, copy_project, git_commit, run, write_dvc_yaml

TINY = ROOT / "tests" / "configs" / "tiny.yaml"
DEMO = ROOT / "config" / "config.yaml"


def test_committed_dvc_yaml_is_the_one_the_stage_table_makes():
    """dvc.yaml is generated (`make dvc`): the committed file is current."""
    path, text = generate()
    assert path == ROOT / "dvc.yaml"
    assert path.read_text() == text, "dvc.yaml is stale: run `make dvc`"


def test_colt_runs_pretrain_in_dvc_stages_that_declare_their_record_and_pool():
    """In a paper config's dvc.yaml, the COLT runs (pool file: the 300K Random Images) pretrain
    in ``pretrain_colt_pool``, which reads the prepared pool and declares the resampling
    record; ``prepare_pool`` depends on the file, read from the experiment's folder as its
    data is; the other runs keep ``pretrain``. In the variants' (COLT on the demo's pool of
    images outside D_i) the COLT run is in ``pretrain_colt``: a record, no pool file."""
    from sdclr.methods.colt import RECORD_NAME
    from sdclr.pipeline import paths

    assert paths.COLT_RECORD.endswith("/" + RECORD_NAME)
    stages = yaml.safe_load(generate("config/paper/cifar10_lt.yaml")[1])["stages"]
    pooled = stages["pretrain_colt_pool"]
    assert [item["method"] for item in pooled["matrix"]["run"]] == ["simclr_colt", "sdclr_colt"]
    assert "results/data/${item.run.dataset}/pool/${item.run.pool}.pt" in pooled["deps"]
    assert any(str(out).endswith("/colt_resampling.json") for out in pooled["outs"])
    pool = "results/data/raw/300K_random_images.npy"
    expected = {"dataset": "cifar10_lt", "pool": "300K_random_images", "source": pool}
    assert stages["prepare_pool"]["matrix"]["run"] == [expected]
    others = [item["method"] for item in stages["pretrain"]["matrix"]["run"]]
    assert "sdclr" in others and not {"simclr_colt", "sdclr_colt"} & set(others)
    assert not any("colt_resampling" in str(out) for out in stages["pretrain"]["outs"])
    variants = yaml.safe_load(generate("config/variants.yaml")[1])["stages"]
    assert [item["method"] for item in variants["pretrain_colt"]["matrix"]["run"]] == ["sdclr_colt"]
    assert "prepare_pool" not in variants and "pretrain_colt_pool" not in variants
    assert "--pool" not in variants["pretrain_colt"]["cmd"]


def test_the_snakefile_loads_neither_torch_nor_numpy():
    """Every sdclr module the workflow's rules import is pure: parsing the workflow (every
    SLURM job parses it again) never pays for torch."""
    imports = set()
    for smk in [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]:
        for line in smk.read_text().splitlines():
            if m := re.match(r"from (sdclr[\w.]*) import (.+)", line):
                imports.add(f"from {m.group(1)} import {m.group(2)}")
    assert len(imports) >= 5
    code = "\n".join([*sorted(imports), "import json, sys", "print(json.dumps(list(sys.modules)))"])
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    loaded = set(json.loads(proc.stdout))
    assert not loaded & {"torch", "numpy", "pandas", "matplotlib"}


@pytest.fixture(scope="module")
def demo_plan() -> dict:
    return resolve(load_raw_config(DEMO))


def test_every_output_of_every_stage_is_git_ignored(demo_plan):
    """A new stage's outputs need no .gitignore edit: whatever the stage table writes under
    results/ is ignored (results/README.md alone is tracked)."""
    outputs = [
        re.sub(r"\{[^}]+\}", "x", spec.path)
        for stage in STAGES
        for spec in stage_outputs(stage, demo_plan["config"]).values()
    ]
    assert outputs and all(path.startswith("results/") for path in outputs)
    proc = subprocess.run(
        ["git", "check-ignore", "--no-index", *outputs, "results/README.md"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    ignored = set(proc.stdout.split())
    assert ignored == set(outputs), set(outputs) - ignored


def test_a_pretraining_runs_the_code_of_its_method_and_extensions_only(demo_plan):
    """BCL-D's pretraining (SDCLR + BCL) runs bcl.py and sdclr.py, the loop and the data; not
    SimCLR's module, another extension, a probe, the reports or the figures."""
    code = demo_plan["settings"]["fmnist_lt"]["pretrain/bcl_d"]["code"]
    assert {
        "scripts/pretrain.py",
        "sdclr/training/loop.py",
        "sdclr/pipeline/stages/pretrain.py",
    } <= set(code)
    assert {"sdclr/methods/bcl.py", "sdclr/methods/sdclr.py"} <= set(code)
    for other in ("simclr.py", "temperature_schedule.py", "difficult_examples.py"):
        assert f"sdclr/methods/{other}" not in code
    assert not [f for f in code if f.startswith("sdclr/probes/")]
    assert not {
        "sdclr/reporting/tables.py",
        "sdclr/reporting/figures.py",
        "sdclr/reporting/paper.py",
    } & set(code)
    simclr = demo_plan["settings"]["fmnist_lt"]["pretrain/simclr"]["code"]
    assert "sdclr/methods/simclr.py" in simclr and "sdclr/methods/bcl.py" not in simclr
    assert all(len(digest) == 64 for digest in code.values())


def test_a_probe_runs_its_probe_and_a_report_stage_its_script(demo_plan):
    """The kNN probe's code holds knn.py, the linear probe's does not; the figures' code holds
    figures.py, the tables' does not."""
    jobs = demo_plan["settings"]["fmnist_lt"]
    assert "sdclr/probes/knn.py" in jobs["probe/knn"]["code"]
    assert "sdclr/probes/knn.py" not in jobs["probe/linear"]["code"]
    assert "sdclr/reporting/figures.py" in demo_plan["report"]["make_figures"]["code"]
    assert "sdclr/reporting/figures.py" not in demo_plan["report"]["make_tables"]["code"]


def test_settings_files_hold_every_default_and_their_format(demo_plan):
    """A pretraining's settings hold every PretrainConfig field (what the config left out at
    its default), the method's and extensions' defaults, and the settings format."""
    settings = demo_plan["settings"]["fmnist_lt"]["pretrain/bcl_d"]
    assert settings["format"] == SETTINGS_FORMAT
    assert set(settings["pretrain"]) == set(PretrainConfig.__dataclass_fields__)
    assert settings["pretrain"]["drop_last"] is False and settings["pretrain"]["gpus"] == 1
    assert settings["method"]["extensions"]["bcl"]["momentum"] == 0.97  # not in the config
    assert settings["method"]["hyperparameters"]["head_hidden_layers"] == 2
    assert settings["model"]["input_normalization"] == "imagenet"
    assert (
        "code" in demo_plan["report"]["summarize"] and "labels" in demo_plan["report"]["summarize"]
    )


# -- reruns under Snakemake: a finished run's bookkeeping without training (settings written,
#    every other output touched), then dry runs after a change ------------------------------


def _config_with_bcl(tmp_path: Path) -> Path:
    config = yaml.safe_load(TINY.read_text())
    config["methods"]["bcl_d"] = {
        "label": "BCL-D",
        "algorithm": "sdclr",
        "hyperparameters": {"prune_ratio": 0.9},
        "bcl": {"num_ops": 2, "min_magnitude": 5},
    }
    path = tmp_path / "bcl.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake(checkout: Path, *args: str) -> subprocess.CompletedProcess:
    return run(checkout, str(Path(sys.executable).with_name("snakemake")), "--cores", "1", *args)


@pytest.fixture(scope="module")
def bookkept(tmp_path_factory) -> Path:
    """A checkout with the tiny config plus BCL-D whose every job Snakemake counts as done:
    the settings rules ran, every other output exists (empty) and is marked up to date."""
    tmp = tmp_path_factory.mktemp("bookkept")
    checkout = copy_project(tmp / "project", _config_with_bcl(tmp))
    snakemake(checkout, "--until", "job_settings", "report_settings")
    summary = snakemake(checkout, "--summary").stdout.splitlines()
    for line in summary[1:]:
        name, *_, status, _plan = line.split("\t")
        if status == "missing":
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            (checkout / name).touch()
    snakemake(checkout, "--touch")
    assert "Nothing to be done" in snakemake(checkout, "-n").stdout
    return checkout


def planned_jobs(checkout: Path) -> set[str]:
    """``rule`` or ``rule:wildcards`` of every job a dry run plans."""
    out = snakemake(checkout, "-n").stdout
    jobs = set()
    for block in re.split(r"\n(?=\[\w{3} )", out):
        rule = re.search(r"^(?:local)?rule (\w+):", block, re.M)
        if rule:
            wildcards = re.search(r"^\s+wildcards: (.+)$", block, re.M)
            jobs.add(rule.group(1) + (f":{wildcards.group(1)}" if wildcards else ""))
    return jobs


AGGREGATION = {
    "make_tables:probe=linear",
    "make_tables:probe=fewshot",
    "make_figures",
    "compare_with_paper",
    "make_analysis_report:analysis=pie",
    "make_analysis_report:analysis=geometry",
    "summarize",
    "all",
}


def _runs_of(method: str) -> set[str]:
    jobs = {f"job_settings:dataset=fmnist_lt, job=pretrain/{method}"}
    for split in (1, 2):
        run_ = f"dataset=fmnist_lt, method={method}, split={split}, seed=0"
        jobs |= {f"pretrain:{run_}", f"features:{run_}", f"analyse:{run_}"}
        jobs |= {f"probe:{run_}, probe={p}" for p in ("linear", "fewshot")}
    return jobs


def _edited(checkout: Path, name: str, edit):
    class Edit:
        def __enter__(self):
            self.path, self.text = checkout / name, (checkout / name).read_text()
            self.path.write_text(edit(self.text))

        def __exit__(self, *_):
            self.path.write_text(self.text)

    return Edit()


def test_changing_bcl_reruns_exactly_the_bcl_runs_and_what_follows(bookkept):
    """A change to sdclr/methods/bcl.py reruns BCL-D's settings, pretrainings, probes and
    analyses and the aggregation, and nothing of SimCLR, SDCLR, the data or the splits."""
    with _edited(bookkept, "sdclr/methods/bcl.py", lambda t: t + "\n# a comment\n"):
        jobs = planned_jobs(bookkept)
    assert jobs == _runs_of("bcl_d") | AGGREGATION


def test_changing_a_default_reruns_exactly_the_jobs_that_use_it(bookkept):
    """A changed default of the pretraining loop (drop_last) is in every pretraining's
    settings file, so every pretraining and what follows reruns; the data, the splits and the
    probes' and analyses' settings do not change."""
    old = "drop_last: bool = setting(\n        False,"
    assert old in (bookkept / "sdclr" / "training" / "config.py").read_text()
    with _edited(
        bookkept, "sdclr/training/config.py", lambda t: t.replace(old, old.replace("False", "True"))
    ):
        jobs = planned_jobs(bookkept)
    expected = set().union(*(_runs_of(m) for m in ("simclr", "sdclr", "bcl_d"))) | AGGREGATION
    assert jobs == expected


def test_a_note_or_a_test_reruns_nothing(bookkept):
    """README, tests and the config's comments are not anybody's code."""
    with _edited(bookkept, "README.md", lambda t: t + "\nmore words\n"):
        with _edited(bookkept, "tests/core/test_io.py", lambda t: t + "\n# a comment\n"):
            assert planned_jobs(bookkept) == set()


def test_changing_the_figures_reruns_the_figures_only(bookkept):
    """sdclr/reporting/figures.py is the code of the report stages that draw the probes'
    figures; no training reruns (the analyses draw their own: sdclr/analyses/)."""
    with _edited(bookkept, "sdclr/reporting/figures.py", lambda t: t + "\n# a comment\n"):
        jobs = planned_jobs(bookkept)
    assert jobs == {
        "report_settings:stage=make_figures",
        "report_settings:stage=compare_with_paper",
        "make_figures",
        "compare_with_paper",
        "all",
    }


# -- the same under DVC: its settings stage rewrites the files, `dvc status` names the stages
#    whose settings changed -------------------------------------------------------------------


@pytest.fixture(scope="module")
def dvc_bookkept(tmp_path_factory) -> Path:
    """A git + DVC checkout (tiny config plus BCL-D) whose every stage DVC counts as done."""
    tmp = tmp_path_factory.mktemp("dvc-bookkept")
    checkout = copy_project(tmp / "project", _config_with_bcl(tmp))
    write_dvc_yaml(checkout)
    run(checkout, "git", "init", "-q")
    run(checkout, "dvc", "init", "-q")
    git_commit(checkout, "project")
    run(checkout, "dvc", "repro", "--single-item", "settings")
    from dvc.repo import Repo

    with Repo(str(checkout)) as repo:
        outs = {Path(out.fs_path) for stage in repo.index.stages for out in stage.outs}
    for out in outs:
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            out.touch()
    run(checkout, "dvc", "commit", "--force", "--quiet")
    assert json.loads(run(checkout, "dvc", "status", "--json").stdout or "{}") == {}
    return checkout


def changed_stages(checkout: Path, name: str, edit) -> set[str]:
    """The stages `dvc status` reports changed after ``edit`` of file ``name`` and a rerun of
    the settings stage; then the file and the recorded state are restored."""
    with _edited(checkout, name, edit):
        run(checkout, "dvc", "repro", "--single-item", "settings")
        status = json.loads(run(checkout, "dvc", "status", "--json").stdout or "{}")
    run(checkout, "dvc", "repro", "--single-item", "--force", "settings")
    run(checkout, "dvc", "commit", "--force", "--quiet")
    return set(status)


def test_dvc_reruns_exactly_the_bcl_pretrainings_after_a_change_to_bcl(dvc_bookkept):
    """After a change to bcl.py only BCL-D's pretraining stages have a changed dependency
    (their settings file); what follows them changes when their models do."""
    changed = changed_stages(dvc_bookkept, "sdclr/methods/bcl.py", lambda t: t + "\n# c\n")
    assert changed == {f"pretrain@fmnist_lt-bcl_d-{s}-0" for s in (1, 2)}


def test_dvc_reruns_nothing_after_a_note(dvc_bookkept):
    """A README change touches no stage's dependency, not even the settings stage's."""
    assert changed_stages(dvc_bookkept, "README.md", lambda t: t + "\nmore words\n") == set()
