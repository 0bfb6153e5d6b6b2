"""The whole DAG through the real Snakemake on the embedded Fashion-MNIST (tiny settings)."""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "configs" / "tiny.yaml"
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{SNAKEMAKE.parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        [str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--cores", "2", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        cwd=workdir,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def finished_run(tiny_local_run):
    """The tiny config run by the local executor (tests/conftest.py, shared with the SLURM
    comparison)."""
    return tiny_local_run


@pytest.mark.slow
def test_tiny_pipeline_produces_tables_and_figures(finished_run):
    """One command runs sampling -> pretraining -> probes -> tables and figures, with a
    SimCLR and an SDCLR row of mean ± std in Many / Medium / Few / Std / All."""
    for probe in ("linear", "fewshot"):
        table = (finished_run / "results" / "tables" / f"{probe}.md").read_text()
        assert (
            "| Dataset | Method | Pretrained on | Many | Medium | Few | Std | All | Splits |"
            in table
        )
        for label in ("SimCLR", "SDCLR"):
            row = next(line for line in table.splitlines() if f"| {label} |" in line)
            assert row.count("±") == 5 and row.rstrip().endswith("| 2 |")
        for ext in ("csv", "tex", "json"):
            assert (finished_run / "results" / "tables" / f"{probe}.{ext}").stat().st_size > 0
    for name in ("group_accuracy", "class_profile", "accuracy_vs_frequency"):
        png = finished_run / "results" / "figures" / f"{name}.png"
        assert png.read_bytes()[:4] == b"\x89PNG"
    checkpoints = finished_run / "results" / "checkpoints" / "fmnist_lt"
    assert sorted(
        p.parent.parent.parent.name + "/" + p.parent.parent.name
        for p in checkpoints.glob("*/split*/seed0/model.pt")
    ) == ["sdclr/split1", "sdclr/split2", "simclr/split1", "simclr/split2"]
    linear = json.loads((finished_run / "results" / "tables" / "linear.json").read_text())
    for method in ("simclr", "sdclr"):  # real training and probes: well above 10 % chance
        assert linear["table"]["fmnist_lt"][method]["All"]["mean"] > 25, linear
    # What made them: every record and the table job, each from this code, on the CPU
    made = linear["provenance"]
    assert [r["device"] for r in made["records"]] == ["cpu"] and made["table"]["commit"]
    assert (
        (finished_run / "results" / "tables" / "linear.md")
        .read_text()
        .rstrip()
        .splitlines()[-1]
        .startswith("Provenance: records by commit ")
    )
    _check_analyses(finished_run)
    log = (checkpoints / "sdclr" / "split1" / "seed0" / "train_log.csv").read_text().splitlines()
    assert len(log) == 3 and log[0].startswith("epoch,loss")
    # A job's log (stderr is a file, not a terminal): one line per epoch, no bar redraws.
    job_log = finished_run / "results" / "logs" / "pretrain" / "fmnist_lt" / "sdclr" / "split1"
    text = (job_log / "seed0.log").read_text()
    assert "epoch 1/2 loss" in text and "epoch 2/2 loss" in text and "\r" not in text
    live = (checkpoints / "sdclr" / "split1" / "seed0" / "live.tsv").read_text().splitlines()
    assert len(live) == 3 and live[0].startswith("epoch\tepochs\tloss") and "ETA " in text


def _check_analyses(run: Path) -> None:
    """One analysis record per model, with SDCLR pruned at its own ratio on its pruned branch
    and SimCLR at the analysis setting with re-estimated BN; the PIE and geometry tables have
    a row per method and their figures exist."""
    records = sorted((run / "results" / "analysis" / "fmnist_lt").glob("*/split*/seed0.json"))
    assert [f"{p.parent.parent.name}/{p.parent.name}" for p in records] == [
        "sdclr/split1",
        "sdclr/split2",
        "simclr/split1",
        "simclr/split2",
    ]
    sdclr = json.loads(records[0].read_text())
    simclr = json.loads(records[2].read_text())
    assert (sdclr["pie"]["prune_ratio"], sdclr["pie"]["batchnorm"]) == (0.9, "pruned branch")
    assert (simclr["pie"]["prune_ratio"], simclr["pie"]["batchnorm"]) == (
        0.9,
        "re-estimated on D_i",
    )
    assert len(sdclr["classes"]) == len(sdclr["train_counts"]) == 10
    assert len(sdclr["geometry"]["cosine_matrix"]) == 10
    for analysis in ("pie", "geometry"):
        table = (run / "results" / "tables" / f"{analysis}.md").read_text()
        for label in ("SimCLR", "SDCLR"):
            row = next(line for line in table.splitlines() if f"| {label} |" in line)
            assert row.rstrip().endswith("| 2 |") and "±" in row
        assert (run / "results" / "tables" / f"{analysis}.csv").stat().st_size > 0
        assert (run / "results" / "figures" / f"{analysis}.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_rerun_is_a_no_op_and_a_method_change_reruns_only_that_method(finished_run):
    """A finished run has nothing to do; changing one method's hyperparameter reruns exactly
    that method's pretraining and probes and the aggregation after them."""
    assert "Nothing to be done" in snakemake(finished_run, "--configfile", "tiny.yaml", "-n").stdout
    config = yaml.safe_load((finished_run / "tiny.yaml").read_text())
    config["methods"]["sdclr"]["hyperparameters"]["prune_ratio"] = 0.5
    (finished_run / "changed.yaml").write_text(yaml.safe_dump(config))
    counts = _dry_run_counts(finished_run, "changed.yaml")
    assert counts.get("pretrain") == 2 and counts.get("probe") == 4, counts
    assert counts.get("analyse") == 2 and counts.get("make_analysis_report") == 2, counts
    assert "prepare_dataset" not in counts and "make_split" not in counts


def _dry_run_counts(workdir: Path, configfile: str) -> dict[str, int]:
    dry = snakemake(workdir, "--configfile", configfile, "-n", "--quiet", "rules").stdout
    counts = {}
    for line in dry.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


@pytest.mark.slow
def test_a_changed_temperature_reruns_exactly_that_method(finished_run):
    """One method's temperature changed: its settings file, its pretraining and probes and
    the aggregation rerun; the other method, the data and the splits do not."""
    config = yaml.safe_load((finished_run / "tiny.yaml").read_text())
    config["methods"]["simclr"]["hyperparameters"] = {"temperature": 0.3}
    (finished_run / "temperature.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    counts = _dry_run_counts(finished_run, "temperature.yaml")
    assert counts.get("job_settings") == 1 and counts.get("report_settings") is None, counts
    assert counts.get("pretrain") == 2 and counts.get("probe") == 4, counts
    assert counts.get("analyse") == 2, counts


@pytest.mark.slow
def test_a_changed_label_reruns_no_training_and_shows_in_the_table(finished_run, tmp_path):
    """Renaming a method reruns only the report (settings, tables, figures): no pretraining
    and no probe, and the table shows the new name."""
    work = tmp_path / "run"
    shutil.copytree(finished_run, work, symlinks=True)
    config = yaml.safe_load((work / "tiny.yaml").read_text())
    config["methods"]["sdclr"]["label"] = "SDCLR (p=0.9)"
    (work / "label.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    counts = _dry_run_counts(work, "label.yaml")
    assert "pretrain" not in counts and "probe" not in counts and "job_settings" not in counts
    assert "analyse" not in counts and counts.get("make_analysis_report") == 2, counts
    # each report stage's settings file (they all carry the labels), none of a training job
    assert counts.get("report_settings") == 5 and counts.get("make_tables") == 2, counts
    snakemake(work, "--configfile", "label.yaml")
    assert "| SDCLR (p=0.9) |" in (work / "results" / "tables" / "linear.md").read_text()


@pytest.mark.slow
def test_bad_config_stops_before_any_job(tmp_path):
    """An unknown method in the config stops Snakemake before it runs anything, with the key
    and the known methods in the message."""
    config = yaml.safe_load(TINY.read_text())
    config["methods"]["byol"] = {}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(tmp_path, "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0
    assert "methods.byol: unknown method 'byol'" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def _checkout_copy(tmp_path: Path) -> Path:
    """The workflow's files (Snakefile, profiles link, workflow/, config/, scripts/, the conda
    environment) in a
    fresh directory, so plain `snakemake` runs there as in a new clone."""
    work = tmp_path / "checkout"
    work.mkdir()
    for name in ("Snakefile", "profiles", "workflow", "config", "scripts", "environment.yml"):
        source = ROOT / name
        if source.is_symlink():
            (work / name).symlink_to(os.readlink(source))
        elif source.is_dir():
            shutil.copytree(source, work / name, symlinks=True)
        else:
            shutil.copy(source, work / name)
    shutil.copy(TINY, work / "tiny.yaml")
    return work


def plain_snakemake(workdir: Path, *args: str, **kwargs) -> subprocess.Popen:
    """`snakemake ARGS` exactly as a user types it: no --cores, no --snakefile, no profile."""
    env = {**os.environ, "PATH": f"{SNAKEMAKE.parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.Popen(
        [str(SNAKEMAKE), *args],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        **kwargs,
    )


def _finish(proc: subprocess.Popen, timeout: float = 900) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def _wait_for_file(pattern_root: Path, pattern: str, proc: subprocess.Popen) -> Path:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        found = sorted(pattern_root.glob(pattern))
        if found:
            return found[0]
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.1)
    raise AssertionError(f"no {pattern} under {pattern_root}")


@pytest.mark.slow
def test_plain_snakemake_finds_the_default_profile(tmp_path):
    """`snakemake` with no flags in a checkout uses profiles/default (cores, rerun-incomplete):
    no "cores have to be specified"."""
    work = _checkout_copy(tmp_path)
    code, out = _finish(plain_snakemake(work, "-n"))
    assert code == 0, out
    assert "Using workflow specific profile profiles/default" in out


@pytest.mark.slow
def test_rerunning_the_same_command_after_ctrl_c_and_after_a_killed_snakemake(tmp_path):
    """Ctrl-C during pretraining, then the same command: it finishes (no
    IncompleteFilesException). Snakemake SIGKILLed: `--unlock` (what the README says), then the
    same command finishes, resuming what the orphaned job left."""
    work = _checkout_copy(tmp_path)
    runs = work / "results" / "checkpoints"
    first = plain_snakemake(work, "--configfile", "tiny.yaml")
    _wait_for_file(runs, "*/*/split*/seed0/resume.pt", first)
    first.send_signal(signal.SIGINT)
    code, out = _finish(first)
    assert code != 0, out
    code, out = _finish(plain_snakemake(work, "--configfile", "tiny.yaml", "--forceall", "-n"))
    assert code == 0, out

    shutil.rmtree(work / "results" / "checkpoints")
    second = plain_snakemake(work, "--configfile", "tiny.yaml")
    lock = _wait_for_file(runs, "*/*/split*/seed0/resume.pt", second).with_name("run.lock")
    holder = int(lock.read_text().split()[1])
    os.kill(second.pid, signal.SIGKILL)  # Snakemake alone: its jobs live on as orphans
    second.wait()
    code, out = _finish(plain_snakemake(work, "--configfile", "tiny.yaml"))
    assert code != 0 and "--unlock" in out, out
    code, out = _finish(plain_snakemake(work, "--configfile", "tiny.yaml", "--unlock"))
    assert code == 0, out
    deadline = time.monotonic() + 300
    while _alive(holder) and time.monotonic() < deadline:  # the orphan ends on its own
        time.sleep(0.2)
    code, out = _finish(plain_snakemake(work, "--configfile", "tiny.yaml"))
    assert code == 0, out
    assert (work / "results" / "tables" / "linear.md").exists()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


@pytest.mark.slow
def test_a_config_error_is_one_message_without_a_traceback(tmp_path):
    """A misspelt key stops Snakemake with the config file, the key and the fix, and no
    Python traceback above it."""
    config = yaml.safe_load(TINY.read_text())
    config["datasets"]["fmnist_lt"]["pretrain"]["batch_sise"] = 32
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(tmp_path, "--configfile", "bad.yaml", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Error in the config (bad.yaml)" in out or f"({tmp_path / 'bad.yaml'})" in out
    assert "datasets.fmnist_lt.pretrain.batch_sise: unknown key" in out, out
    assert "Traceback" not in out and 'File "' not in out, out


@pytest.mark.slow
def test_composed_methods_and_a_removal_stage_train_through_snakemake(tmp_path):
    """Declared in the config alone, through the real Snakemake: SDCLR + BCL + a temperature
    schedule (its log has the temperature and BCL's weight), and a removal run, SDCLR with
    margin tuning and temperature scaling of difficult pairs that pretrains on D_i minus the
    difficult examples its own stage selected with the SimCLR run's encoder: the record names
    the removed samples per class, the run trains on exactly the kept ones, a probe follows,
    the figure of where the removed examples come from is drawn, and the difficult-pairs
    analysis counts the re-weighted pairs of exactly the kept images, by class."""
    config = yaml.safe_load(TINY.read_text())
    config["methods"] = {
        "simclr": {"label": "SimCLR"},
        "bcl_d_ts": {
            "label": "BCL-D + TS",
            "algorithm": "sdclr",
            "hyperparameters": {"prune_ratio": 0.9},
            "bcl": {"num_ops": 2, "min_magnitude": 5},
            "temperature_schedule": {"t_min": 0.1, "t_max": 1.0, "period": 1},
            "pretrain": {"weight_decay": 5.0e-4},
        },
    }
    config["removal_methods"] = [
        {
            "name": "sdclr_de_all",
            "label": "SDCLR + DE",
            "algorithm": "sdclr",
            "hyperparameters": {"prune_ratio": 0.9},
            "difficult_examples": {"margin": 0.1, "temperature_ratio": 0.5},
            "selector": "simclr",
            "remove": {"fraction": 0.2},
        }
    ]
    config["splits"] = [1]
    config["analyses"] = ["difficult_pairs"]
    (tmp_path / "composed.yaml").write_text(yaml.safe_dump(config))
    target = "results/eval/fmnist_lt/bcl_d_ts/split1/seed0/linear.json"
    removal_eval = "results/eval/fmnist_lt/sdclr_de_all/split1/seed0/linear.json"
    figure = "results/figures/removal/fmnist_lt/sdclr_de_all.png"
    pairs = "results/tables/difficult_pairs.md"
    # --configfile takes nargs: the targets come first
    snakemake(tmp_path, target, removal_eval, figure, pairs, "--configfile", "composed.yaml")
    run_dir = tmp_path / "results" / "checkpoints" / "fmnist_lt" / "bcl_d_ts" / "split1" / "seed0"
    header = (run_dir / "train_log.csv").read_text().splitlines()[0].split(",")
    assert {"temperature", "bcl_mean_weight", "pruned_weights"} <= set(header)
    settings = json.loads(
        (tmp_path / "results" / "settings" / "fmnist_lt" / "pretrain" / "bcl_d_ts.json").read_text()
    )
    assert settings["pretrain"]["weight_decay"] == 5.0e-4
    record = json.loads((tmp_path / target).read_text())
    assert record["method"] == "bcl_d_ts" and record["summary"]["All"] > 10

    removal = json.loads(
        (tmp_path / "results/removal/fmnist_lt/sdclr_de_all/split1/seed0.json").read_text()
    )
    split = json.loads((tmp_path / "results/splits/fmnist_lt/split1.json").read_text())
    d_i = split["indices"]["D_i"]
    assert removal["selector"] == "simclr" and removal["sizes"]["removed"] == math.ceil(
        0.2 * len(d_i)
    )
    assert sorted(removal["kept_indices"] + removal["removed_indices"]) == sorted(d_i)
    per_class = removal["per_class"]
    assert [c["D_i"] for c in per_class] == sorted(split["counts"]["D_i"], reverse=True)
    assert sum(c["removed"] for c in per_class) == removal["sizes"]["removed"]
    log = (tmp_path / "results/logs/pretrain/fmnist_lt/sdclr_de_all/split1/seed0.log").read_text()
    assert f"on {removal['sizes']['kept']} images" in log
    evaluation = json.loads((tmp_path / removal_eval).read_text())
    assert evaluation["pretrain_set"] == "D_i - 20% difficult"
    assert (tmp_path / figure).stat().st_size > 0
    analysis = json.loads(
        (tmp_path / "results/analysis/fmnist_lt/sdclr_de_all/split1/seed0.json").read_text()
    )
    counted = analysis["difficult_pairs"]["per_class"]
    assert sum(c["images"] for c in counted) == removal["sizes"]["kept"]
    assert [c["images"] for c in counted] == [c["kept"] for c in per_class]
    assert "difficult_pairs" not in json.loads(
        (tmp_path / "results/analysis/fmnist_lt/simclr/split1/seed0.json").read_text()
    )
    table = (tmp_path / pairs).read_text()
    assert "SDCLR + DE" in table and "BCL-D" not in table
    assert (tmp_path / "results/figures/difficult_pairs.png").stat().st_size > 0
