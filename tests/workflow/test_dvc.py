"""`dvc repro` and DVC versioning, in temporary git + DVC repositories (tiny config)."""

import hashlib
import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.checkout import BIN, ROOT, copy_project, git_commit, run, write_dvc_yaml

TINY = ROOT / "tests" / "configs" / "tiny.yaml"
DVC = str(BIN / "dvc")

pytestmark = pytest.mark.slow


def project_copy(dest: Path) -> Path:
    """The project's files (as a clone has them, no results) in a new git + DVC repository
    whose config/config.yaml is the tiny test config and whose dvc.yaml is made for it (as
    `make dvc` makes it); commits of the same files are the same commits (fixed dates)."""
    copy_project(dest, TINY)
    write_dvc_yaml(dest)
    run(dest, "git", "init", "-q")
    git_commit(dest, "empty")
    run(dest, DVC, "init", "-q")
    git_commit(dest, "project")
    return dest


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


#: Files in a run directory that are logs of one execution, not outputs: the lock naming the
#: job that held it, and the wall-clock times of its epochs (timing.csv, the live view).
RUN_LOGS = {"run.lock", "timing.csv", "live.tsv", ".gitignore"}


def output_hashes(repo: Path) -> dict[str, str]:
    return {
        str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((repo / "results").rglob("*"))
        if p.is_file() and "raw" not in p.parts and "logs" not in p.parts and p.name not in RUN_LOGS
    }


def declared_outputs(repo: Path) -> set[str]:
    """Every output file dvc.yaml declares (all stages, matrix expanded, the files of a
    declared folder), repo-relative."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        outs = [Path(out.fs_path) for stage in dvc_repo.index.stages for out in stage.outs]
    files = [f for out in outs for f in (sorted(out.rglob("*")) if out.is_dir() else [out])]
    return {str(f.relative_to(repo.resolve())) for f in files if not f.is_dir()}


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory) -> Path:
    """A repository in which `dvc repro` ran the tiny config to completion."""
    repo = project_copy(tmp_path_factory.mktemp("dvc-repro"))
    proc = run(repo, DVC, "repro")
    assert "Running stage 'compare_with_paper'" in proc.stdout
    return repo


@pytest.fixture(scope="module")
def reproduced_hashes(reproduced) -> dict[str, str]:
    """The output hashes of the `dvc repro` run, before any test changes its repository."""
    hashes = output_hashes(reproduced)
    hashes.pop("results/README.md", None)
    return hashes


@pytest.fixture(scope="module")
def snakemade(tmp_path_factory) -> Path:
    """A repository in which Snakemake ran the same config (recording in DVC at the end)."""
    repo = project_copy(tmp_path_factory.mktemp("dvc-snakemake"))
    proc = run(repo, str(BIN / "snakemake"), "--cores", "2")
    assert "recorded the outputs in DVC" in proc.stdout + proc.stderr
    return repo


def test_repro_completes_and_a_second_repro_runs_nothing(reproduced):
    """`dvc repro` produces the tables; run again, it runs no stage."""
    assert "| SDCLR |" in (reproduced / "results" / "tables" / "linear.md").read_text()
    again = run(reproduced, DVC, "repro")
    assert stages_run(again.stdout) == set()
    assert "Data and pipelines are up to date" in again.stdout
    metrics = run(reproduced, DVC, "metrics", "show").stdout
    # One small metrics file: All and Few per probe and method (sdclr/reporting/summary.py).
    assert "results/metrics.json" in metrics and "linear.fmnist_lt.sdclr.All" in metrics
    assert "results/tables/linear.json" not in metrics and ".mean" not in metrics


def test_dvc_and_snakemake_write_byte_identical_outputs(reproduced_hashes, snakemade):
    """`dvc repro` and Snakemake of the same config and code write the same bytes: models,
    records, tables (their provenance lines too), figures, metrics."""
    snakemake_hashes = output_hashes(snakemade)
    snakemake_hashes.pop("results/README.md", None)
    differing = sorted(
        name for name in reproduced_hashes if reproduced_hashes[name] != snakemake_hashes.get(name)
    )
    assert set(reproduced_hashes) == set(snakemake_hashes) and not differing, differing


def test_changing_one_method_reruns_only_its_stages(reproduced):
    """A changed SDCLR hyperparameter reruns SDCLR's pretraining and probes and the
    aggregation, and nothing of SimCLR, the data or the splits (a real `dvc repro`: its dry
    run cannot see that a rerun changes an output). The settings stages, which read the whole
    config file, rerun in seconds and rewrite only the files whose content changed."""
    config_path = reproduced / "config" / "config.yaml"
    original = config_path.read_text()
    config = yaml.safe_load(original)
    config["methods"]["sdclr"]["hyperparameters"]["prune_ratio"] = 0.5
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        rerun = run(reproduced, DVC, "repro")
    finally:
        config_path.write_text(original)
    ran = stages_run(rerun.stdout)
    expected = {f"pretrain@fmnist_lt-sdclr-{s}-0" for s in (1, 2)}
    expected |= {f"probe@fmnist_lt-sdclr-{s}-0-{p}" for s in (1, 2) for p in ("linear", "fewshot")}
    expected |= {"make_tables@linear", "make_tables@fewshot", "make_figures", "compare_with_paper"}
    expected |= {f"features@fmnist_lt-sdclr-{s}-0" for s in (1, 2)}  # the model's features
    expected |= {f"analyse@fmnist_lt-sdclr-{s}-0" for s in (1, 2)}
    expected |= {"make_analysis_report@pie", "make_analysis_report@geometry"}
    expected |= {"summarize"}
    # The settings stage reruns on a config edit (seconds) and rewrites every settings file;
    # only sdclr's and the report stages' change, so only their stages rerun after it.
    expected |= {"settings"}
    assert ran == expected, rerun.stdout


def test_plots_overlay_the_runs_and_show_the_group_bars(reproduced):
    """`dvc plots show` renders the top-level plots: every run's loss in one chart (a line
    per run, by the template in workflow/report/) and the group-accuracy bars, into
    dvc_plots/, which git ignores."""
    run(reproduced, DVC, "plots", "show")
    html = (reproduced / "dvc_plots" / "index.html").read_text()
    assert "Pretraining loss, one line per run" in html and "Test accuracy (%) by group" in html
    runs = {f"fmnist_lt/{m}/split{s}/seed0" for m in ("simclr", "sdclr") for s in (1, 2)}
    assert all(f'"run": "{name}"' in html for name in runs), html[:2000]
    ignored = run(reproduced, "git", "check-ignore", "dvc_plots/index.html", check=False)
    assert ignored.returncode == 0


def test_dvc_outputs_equal_the_files_snakemake_produces(snakemade):
    """The outputs dvc.yaml declares are exactly the files a Snakemake run of the same config
    produces (raw data and logs aside)."""
    produced = set(output_hashes(snakemade))
    produced.discard("results/README.md")
    assert declared_outputs(snakemade) == produced


def test_after_snakemake_and_recording_dvc_is_clean(snakemade):
    """After a Snakemake run and its recording step, `dvc status` is clean and `dvc repro`
    runs nothing."""
    status = run(snakemade, DVC, "status")
    assert "Data and pipelines are up to date" in status.stdout, status.stdout
    assert stages_run(run(snakemade, DVC, "repro").stdout) == set()


def test_push_then_pull_restores_identical_files(reproduced, tmp_path):
    """Outputs pushed to a local directory remote come back identical after the workspace
    copies and the cache are deleted."""
    run(reproduced, DVC, "remote", "add", "-d", "-f", "local", str(tmp_path / "remote"))
    run(reproduced, DVC, "push")
    declared = declared_outputs(reproduced)
    before = {
        name: digest for name, digest in output_hashes(reproduced).items() if name in declared
    }
    assert set(before) == declared and any(name.endswith("model.pt") for name in before)
    for name in before:
        (reproduced / name).unlink()
    shutil.rmtree(reproduced / ".dvc" / "cache")
    run(reproduced, DVC, "pull")
    after = {name: digest for name, digest in output_hashes(reproduced).items() if name in declared}
    assert after == before


def test_gh_and_colt_with_a_pool_file_give_the_same_bytes_through_dvc_and_snakemake(tmp_path):
    """SDCLR + GH and SDCLR + COLT with an external pool file (a ``.npy`` the config names,
    prepared by its own stage) on the tiny config: `dvc repro` of the dvc.yaml `make dvc`
    writes and a Snakemake run write the same bytes, COLT's resampling record and its
    analysis among them, and every file dvc.yaml declares is made."""
    import numpy as np

    config = yaml.safe_load(TINY.read_text())
    config["splits"] = [1]
    config["probes"] = ["linear"]
    config["analyses"] = ["colt_resampling"]
    config["methods"] = {
        "sdclr_gh": {
            "label": "SDCLR + GH",
            "algorithm": "sdclr",
            "geometric_harmonization": {
                "clusters": 10,
                "warmup_epochs": 1,
                "ramp_epochs": 1,
                "prior_period": 1,
            },
        },
        "sdclr_colt": {
            "label": "SDCLR + COLT",
            "algorithm": "sdclr",
            "colt": {
                "pool": "pool/noise_images.npy",
                "warmup_epochs": 1,
                "period": 1,
                "budget": 48,
                "clusters": 3,
            },
        },
    }
    (tmp_path / "gh_colt.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    pool = np.random.default_rng(0).integers(0, 256, (120, 28, 28, 1), dtype=np.uint8)
    repos = {}
    for tool in ("dvc", "snakemake"):
        repo = tmp_path / tool
        repo.mkdir()
        copy_project(repo, tmp_path / "gh_colt.yaml")
        (repo / "pool").mkdir()
        np.save(repo / "pool" / "noise_images.npy", pool)
        write_dvc_yaml(repo)
        run(repo, "git", "init", "-q")
        git_commit(repo, "empty")
        run(repo, DVC, "init", "-q")
        git_commit(repo, "project")
        repos[tool] = repo
    dvc_yaml = (repos["dvc"] / "dvc.yaml").read_text()
    assert "prepare_pool:" in dvc_yaml and "pretrain_colt_pool:" in dvc_yaml
    ran = stages_run(run(repos["dvc"], DVC, "repro").stdout)
    assert {"prepare_pool@run0", "pretrain_colt_pool@run0-1-0", "pretrain@run0-1-0"} <= ran, ran
    run(repos["snakemake"], str(BIN / "snakemake"), "--cores", "2")

    hashes = {tool: output_hashes(repo) for tool, repo in repos.items()}
    for found in hashes.values():
        found.pop("results/README.md", None)
    differing = sorted(n for n in hashes["dvc"] if hashes["dvc"][n] != hashes["snakemake"].get(n))
    assert set(hashes["dvc"]) == set(hashes["snakemake"]) and not differing, differing
    assert declared_outputs(repos["dvc"]) == set(hashes["dvc"])
    run_dir = repos["dvc"] / "results" / "checkpoints" / "fmnist_lt"
    record = yaml.safe_load((run_dir / "sdclr_colt/split1/seed0/colt_resampling.json").read_text())
    assert sum(c["pool_images"] for c in record["resamplings"][0]["clusters"]) == 48
    gh_log = (run_dir / "sdclr_gh/split1/seed0/train_log.csv").read_text().splitlines()
    assert {"gh_weight", "gh_loss"} <= set(gh_log[0].split(",")) and len(gh_log) == 3
    assert "sdclr_colt" in (repos["dvc"] / "results" / "tables" / "colt_resampling.csv").read_text()
