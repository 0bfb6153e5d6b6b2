"""`snakemake --profile slurm`: the profile's sbatch options, a real run on a one-node SLURM
cluster started by the test, and pretraining that resumes after SIGTERM / SIGKILL."""

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml
from slurm_cluster import SlurmCluster, snakemake_with_quick_status_checks, unavailable_reason

from sdclr.io import write_json
from sdclr.pipeline.config import job_settings, load_config
from sdclr.pipeline.joblog import ATTEMPT_LINE
from sdclr.torch_files import torch_load

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "configs" / "tiny.yaml"
PROFILE = ROOT / "workflow" / "profiles" / "slurm"
BIN = Path(sys.executable).parent
SUBMITTED = re.compile(r"Job (\S+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")
RESUMED = re.compile(r"resumed from \S+resume\.pt at epoch (\d+)/(\d+)")


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any SDCLR_SLURM_* site setting, with the venv first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SDCLR_SLURM_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    return {**env, **extra}


def snakemake(workdir: Path, *args: str, env: dict, timeout: float = 900, command=None):
    command = command or [str(BIN / "snakemake")]
    return subprocess.run(
        [*command, "--snakefile", str(ROOT / "Snakefile"), *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def sbatch_options(argv: list[str]) -> dict[str, str | bool]:
    """sbatch's argv as {option: value} ('--x=v', '--x v' and '-x v'; flags map to True)."""
    takes_value = {"-A", "-p", "-t", "-D", "-C", "--mem", "--mem-per-cpu", "--job-name"}
    takes_value |= {"--output", "--comment", "--clusters"}
    options, i = {}, 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--") and "=" in arg:
            key, value = arg.split("=", 1)
            options[key] = value
        elif arg in takes_value:
            options[arg] = argv[i + 1]
            i += 1
        else:
            options[arg] = True
        i += 1
    return options


def job_stats(output: str) -> dict[str, int]:
    """Snakemake's 'Job stats' table (rule -> number of jobs) from its output."""
    table = output.split("Job stats:", 1)[1].split("Select jobs to execute", 1)[0]
    counts = {}
    for line in table.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
            counts[parts[0]] = int(parts[1])
    return counts


# -- 1. sbatch options of the real profile, through the real executor plugin ---------------------

FAKE_SBATCH = """#!{python}
# Records the sbatch call the executor plugin makes, then refuses it (nothing is submitted).
import json, os, sys
with open(os.environ["FAKE_SBATCH_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
sys.stderr.write("fake sbatch: not submitting\\n")
sys.exit(1)
"""


def fake_slurm_commands(bindir: Path, account: str) -> None:
    """sbatch that records and refuses; the read-only commands the plugin calls on the way
    (account check, partition and config look-ups) answer like a site with ``account``."""
    bindir.mkdir()
    scripts = {
        "sbatch": FAKE_SBATCH.format(python=sys.executable),
        "sacctmgr": f"#!/bin/sh\necho {account}\n",
        "sshare": f"#!/bin/sh\necho {account}\n",
        "sinfo": "#!/bin/sh\necho PARTITION; echo 'cpu*'; echo gpu\n",
        "scontrol": "#!/bin/sh\necho 'MinJobAge = 300 sec'\n",
        "squeue": "#!/bin/sh\nexit 0\n",
        "sacct": "#!/bin/sh\nexit 1\n",
    }
    for name, text in scripts.items():
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)


def submissions_by_rule(calls: Path) -> dict[str, list[dict]]:
    """The recorded sbatch calls as {rule: [options + attempt]}."""
    by_rule: dict[str, list[dict]] = {}
    for line in calls.read_text().splitlines():
        options = sbatch_options(json.loads(line))
        attempt = int(re.search(r"--attempt (\d+)", options["--wrap"]).group(1))
        named = re.match(r"rule_([a-z_]+?)_wildcards", options["--comment"])  # a job's comment
        # a job group's comment names the group: its jobs' rule from the remote --target-jobs
        named = named or re.search(r"--target-jobs\W+([a-z_]+):", options["--wrap"])
        rule = named.group(1)
        by_rule.setdefault(rule, []).append({**options, "attempt": attempt})
    return by_rule


@pytest.mark.slow
def test_the_config_sizes_the_sbatch_calls_and_the_site_settings_place_them(tmp_path):
    """With the CIFAR paper config's `resources:` and the site settings in the environment, the
    real plugin's sbatch call for pretraining asks for one GPU of the site's model, 8 CPUs per
    GPU (used as torch threads), 32 GB, 8 h, the GPU partition, the account and --requeue; the
    2nd and 3rd attempts get 2x and 3x the time and 1.5x and 2x the memory. A probe also gets
    a GPU; a CPU rule gets no GPU and the CPU partition. Then `--set-resources
    pretrain:mem_mb=8000` on the command line changes that one resource and nothing else (the
    profile has no set-resources that the flag would replace)."""
    # Inputs of one pretraining job, one probe and one split: only those three jobs run (and
    # the local settings rule for nothing: each settings file is older than what it feeds).
    work = tmp_path / "work"
    work.mkdir()
    config = yaml.safe_load(TINY.read_text())
    paper = yaml.safe_load((ROOT / "config" / "paper" / "cifar_base.yaml").read_text())
    config["resources"] = paper["resources"]
    (work / "tiny.yaml").write_text(yaml.safe_dump(config))
    for name in (  # oldest first: the jobs' settings files, then their other inputs
        "results/settings/fmnist_lt/split.json",
        "results/settings/fmnist_lt/pretrain/sdclr.json",
        "results/settings/fmnist_lt/probe/linear.json",
        "results/settings/fmnist_lt/features.json",
        "results/data/fmnist_lt/dataset.pt",
        "results/splits/fmnist_lt/split1.json",
        "results/checkpoints/fmnist_lt/simclr/split1/seed0/model.pt",
        "results/features/fmnist_lt/simclr/split1/seed0.pt",  # the probe's model's features
    ):
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text("placeholder\n")
    targets = [
        "results/checkpoints/fmnist_lt/sdclr/split1/seed0/model.pt",  # pretrain
        "results/eval/fmnist_lt/simclr/split1/seed0/linear.json",  # probe
        "results/splits/fmnist_lt/split2.json",  # make_split
    ]
    fake_slurm_commands(tmp_path / "bin", "proj42")
    calls = tmp_path / "sbatch_calls.jsonl"
    env = clean_env(
        PATH=f"{tmp_path / 'bin'}{os.pathsep}{clean_env()['PATH']}",
        FAKE_SBATCH_LOG=str(calls),
        SDCLR_SLURM_ACCOUNT="proj42",
        SDCLR_SLURM_PARTITION="cpu",
        SDCLR_SLURM_GPU_PARTITION="gpu",
        SDCLR_SLURM_GPU_MODEL="a100",
    )

    def submit(*extra: str) -> tuple[dict[str, list[dict]], str]:
        calls.unlink(missing_ok=True)
        proc = snakemake(
            work,
            *("--profile", str(PROFILE), "--configfile", "tiny.yaml"),
            *("--slurm-init-seconds-before-status-checks", "1", *targets, *extra),
            env=env,
            timeout=300,
        )
        output = proc.stdout + proc.stderr
        assert proc.returncode != 0, output  # every submission was refused
        assert calls.exists(), output
        by_rule = submissions_by_rule(calls)
        assert sorted(by_rule) == ["make_split", "pretrain", "probe"], output
        for rule, submissions in by_rule.items():
            assert sorted(s["attempt"] for s in submissions) == [1, 2, 3], (rule, output)
            for s in submissions:
                assert s["-A"] == "proj42" and s["--requeue"] is True
                assert s["--open-mode"] == "append"
                assert s["--job-name"].startswith("sdclr_")
        return by_rule, output

    by_rule, output = submit()
    for s in by_rule["pretrain"]:
        a = s["attempt"]
        assert s["--gpus"] == "a100:1", s
        assert s["--cpus-per-gpu"] == "8" and "--cpus-per-task" not in s
        assert s["-p"] == "gpu"
        assert s["-t"] == str(480 * a)  # minutes: 8 h, 16 h, 24 h
        assert s["--mem"] == str(32000 + 16000 * (a - 1))
    # ...and torch gets the job's CPUs (the rule's threads; the local default is 1).
    shell = [line for line in output.splitlines() if "scripts/pretrain.py" in line]
    assert shell and all("--threads 8 " in line for line in shell), output
    for s in by_rule["probe"]:
        assert s["--gpus"] == "a100:1" and s["-p"] == "gpu"
        assert s["-t"] == str(120 * s["attempt"])
        assert s["--mem"] == str(16000 + 8000 * (s["attempt"] - 1))
    for s in by_rule["make_split"]:
        assert "--gpus" not in s and "--gres" not in s
        assert s["-p"] == "cpu" and s["--cpus-per-task"] == "1"
        assert s["-t"] == str(30 * s["attempt"])

    overridden, _ = submit("--set-resources", "pretrain:mem_mb=8000")
    for s in overridden["pretrain"]:  # that one value, on every attempt; the rest as before
        assert s["--mem"] == "8000"
        assert s["--gpus"] == "a100:1" and s["-p"] == "gpu" and s["--cpus-per-gpu"] == "8"
        assert s["-t"] == str(480 * s["attempt"])
    for rule in ("probe", "make_split"):
        keep = ("--mem", "-t", "-p", "--gpus")
        assert [{k: s.get(k) for k in keep} for s in overridden[rule]] == [
            {k: s.get(k) for k in keep} for s in by_rule[rule]
        ]


# -- 2. the tiny pipeline on a real (one-node, CPU-only) SLURM cluster ---------------------------


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def slurm_env(cluster: SlurmCluster) -> dict[str, str]:
    """What a CPU-only test cluster needs: its partition (and its SLURM_CONF); the tiny config
    asks for no GPUs."""
    env = clean_env(SDCLR_SLURM_PARTITION=cluster.partition)
    env["SLURM_CONF"] = cluster.env["SLURM_CONF"]
    env["PATH"] = f"{cluster.bin}{os.pathsep}{env['PATH']}"
    return env


# The test cluster has no accounting (no sacct), and the first status check need not wait 40 s.
SLURM_TEST_ARGS = (
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--slurm-keep-successful-logs",
)


@pytest.mark.slow
def test_tiny_pipeline_on_slurm_matches_the_local_run(slurm_cluster, tiny_local_run, tmp_path):
    """`snakemake --profile <repo profile>` submits every job of the tiny config to SLURM with
    the real executor plugin; all of them run as SLURM jobs (ids in Snakemake's output, in
    squeue as COMPLETED, SLURM logs written) and the tables equal the local executor's."""
    shutil.copy(TINY, tmp_path / "tiny.yaml")
    proc = snakemake(
        tmp_path,
        "--profile",
        str(PROFILE),
        "--configfile",
        "tiny.yaml",
        *SLURM_TEST_ARGS,
        env=slurm_env(slurm_cluster),
        command=snakemake_with_quick_status_checks(),
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{output}\n{slurm_cluster.logs()}"

    submitted = SUBMITTED.findall(output)
    jobs = slurm_cluster.jobs()
    planned = job_stats(output)
    # settings files: dataset, split, 2 pretraining runs, 2 probes and the analysis; and one
    # per report stage (tables, figures, comparison, analysis report, summary)
    assert planned.pop("job_settings") == 8 and planned.pop("report_settings") == 5
    # One sbatch per job of the data, splits and pretraining; one per model for its features,
    # probes and analyses (the profile's job group `model`); report stages run locally. Before
    # the groups: 26 submissions (1 + 2 + 4 + 8 probes + 4 analyses + 7 report jobs); now 11.
    assert len(submitted) == 1 + 2 + 4 + 4, output
    assert planned["features"] == 4 and planned["probe"] == 8 and planned["analyse"] == 4
    for _, slurm_id, log in submitted:
        job = jobs[slurm_id]
        assert job["state"] == "COMPLETED" and job["name"].startswith("sdclr_"), job
        assert job["partition"] == slurm_cluster.partition
        assert Path(log).is_file(), log
        assert Path(log).is_relative_to(tmp_path / ".snakemake" / "slurm_logs")
    assert not any("make_tables" in jobs[i]["comment"] for _, i, _ in submitted)

    # Same pretrained weights, then the same tables, as the local executor's run.
    models = sorted((tiny_local_run / "results" / "checkpoints").glob("**/model.pt"))
    assert len(models) == 4
    for model in models:
        local = torch_load(model)["state_dict"]
        remote = torch_load(tmp_path / model.relative_to(tiny_local_run))["state_dict"]
        assert all(torch.equal(local[k], remote[k]) for k in local), model
    for probe in ("linear", "fewshot"):
        table = (tmp_path / "results" / "tables" / f"{probe}.md").read_text()
        assert table == (tiny_local_run / "results" / "tables" / f"{probe}.md").read_text()
    log = tmp_path / "results/logs/pretrain/fmnist_lt/sdclr/split1/seed0.log"
    assert "epoch 2/2" in log.read_text()


@pytest.mark.slow
def test_slurm_requeue_resumes_pretraining_from_its_checkpoint(slurm_cluster, tiny_split, tmp_path):
    """`scontrol requeue` (what preemption does) of a running pretraining job: SLURM sends
    SIGTERM, the job stops cleanly, goes back to the queue and its second run resumes from
    the last checkpoint; Snakemake waits for it and finishes. The job's log keeps both runs."""
    config = yaml.safe_load(TINY.read_text())
    config["datasets"]["fmnist_lt"]["pretrain"].update(epochs=10, checkpoint_every=1)
    (tmp_path / "long.yaml").write_text(yaml.safe_dump(config))
    # Where the workflow expects them (no provenance records: Snakemake does not rerun them).
    (tmp_path / "results" / "data" / "fmnist_lt").mkdir(parents=True)
    (tmp_path / "results" / "splits" / "fmnist_lt").mkdir(parents=True)
    shutil.copy(tiny_split["dataset"], tmp_path / "results" / "data" / "fmnist_lt" / "dataset.pt")
    shutil.copy(tiny_split["split"], tmp_path / "results" / "splits" / "fmnist_lt" / "split1.json")
    run_dir = tmp_path / "results" / "checkpoints" / "fmnist_lt" / "sdclr" / "split1" / "seed0"

    requeued = {}

    def requeue_when_two_epochs_are_logged():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not requeued:
            running = [j for j in slurm_cluster.jobs().values() if j["state"] == "RUNNING"]
            if running and logged_epochs(run_dir) >= 2:
                job = running[0]["id"]
                slurm_cluster.run("scontrol", "requeue", job)
                requeued.update(job=job, epochs=logged_epochs(run_dir))
                # SLURM holds a requeued job for about two minutes; let it start at once.
                while slurm_cluster.jobs()[job]["state"] != "PENDING":
                    time.sleep(0.2)
                slurm_cluster.run("scontrol", "update", f"JobId={job}", "StartTime=now")
            time.sleep(0.2)

    watcher = threading.Thread(target=requeue_when_two_epochs_are_logged, daemon=True)
    watcher.start()
    proc = snakemake(
        tmp_path,
        "--profile",
        str(PROFILE),
        "--configfile",
        "long.yaml",
        *SLURM_TEST_ARGS,
        str((run_dir / "model.pt").relative_to(tmp_path)),
        env=slurm_env(slurm_cluster),
        command=snakemake_with_quick_status_checks(),
    )
    watcher.join(timeout=10)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{output}\n{slurm_cluster.logs()}"
    assert requeued, f"the job was never seen running with 2 epochs done\n{output}"

    show = slurm_cluster.run("scontrol", "show", "job", requeued["job"]).stdout
    assert "Restarts=1" in show and "JobState=COMPLETED" in show, show
    log = (tmp_path / "results/logs/pretrain/fmnist_lt/sdclr/split1/seed0.log").read_text()
    resumed = RESUMED.search(log)
    assert resumed and int(resumed.group(1)) >= requeued["epochs"] >= 2, log
    # The job's log keeps both runs, each after its attempt line (sdclr/pipeline/joblog.py).
    first, second = log.split(ATTEMPT_LINE)[1:]
    assert f"SLURM job {requeued['job']}" in first.splitlines()[0], log
    assert second.splitlines()[0].endswith(f"SLURM job {requeued['job']}, restart 1"), log
    assert "epoch 2/10" in first and "SIGTERM received: stopped" in first, log
    assert RESUMED.search(second) and "epoch 10/10" in second, log
    assert logged_epochs(run_dir) == 10 and (run_dir / "model.pt").is_file()
    (submission,) = SUBMITTED.findall(output)  # one submission, run twice by SLURM
    assert submission[1] == requeued["job"]
    slurm_log = Path(submission[2]).read_text()  # both runs: --open-mode=append
    assert "DUE TO JOB REQUEUE" in slurm_log and slurm_log.count("localrule pretrain:") == 2


# -- 3. kills: SIGTERM and SIGKILL mid-run, and during a checkpoint write -------------------------

EPOCHS = 8


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory) -> dict[str, Path]:
    """The tiny config's dataset and split 1, made by the stage scripts the rules call."""
    data = tmp_path_factory.mktemp("tiny-data")
    config = load_config(TINY)
    config["datasets"]["fmnist_lt"]["data_root"] = str(data / "raw")
    for job in ("dataset", "split"):
        write_json(data / f"{job}.json", job_settings(config, "fmnist_lt", job))
    for argv in (
        ["prepare_dataset.py", "--settings", str(data / "dataset.json")]
        + ["--out", str(data / "dataset.pt"), "--summary", str(data / "summary.json")],
        ["make_split.py", "--settings", str(data / "split.json")]
        + ["--data", str(data / "dataset.pt"), "--split", "1", "--out", str(data / "split1.json")],
    ):
        proc = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / argv[0]), *argv[1:]],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
    return {"dataset": data / "dataset.pt", "split": data / "split1.json"}


@pytest.fixture(scope="module")
def pretrain_setup(tmp_path_factory, tiny_split):
    """The tiny config with more epochs (checkpoint every epoch), its data, and an
    uninterrupted run to compare resumed runs with."""
    directory = tmp_path_factory.mktemp("kill")
    config = load_config(TINY)
    config["datasets"]["fmnist_lt"]["pretrain"].update(epochs=EPOCHS, checkpoint_every=1)
    write_json(directory / "settings.json", job_settings(config, "fmnist_lt", "pretrain/sdclr"))
    data = tiny_split

    def command(out_dir: Path) -> list[str]:
        return [
            sys.executable,
            str(ROOT / "scripts" / "pretrain.py"),
            "--settings",
            str(directory / "settings.json"),
            "--data",
            str(data["dataset"]),
            "--split",
            str(data["split"]),
            "--seed",
            "0",
            "--out-dir",
            str(out_dir),
            "--threads",
            "1",
            "--quiet",
        ]

    reference = directory / "uninterrupted"
    proc = subprocess.run(command(reference), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return command, read_log(reference)


def read_log(run_dir: Path) -> list[dict[str, str]]:
    path = run_dir / "train_log.csv"
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def logged_epochs(run_dir: Path) -> int:
    try:
        return len(read_log(run_dir))
    except (OSError, csv.Error):
        return 0


def temp_files(run_dir: Path) -> set[str]:
    return {p.name for p in run_dir.glob(".*.tmp")} if run_dir.exists() else set()


def finish(command: list[str], log_path: Path) -> str:
    """Run ``command`` to the end, with stderr in ``log_path``; return that log."""
    with open(log_path, "w") as log:
        proc = subprocess.run(command, stderr=log, timeout=600)
    text = log_path.read_text()
    assert proc.returncode == 0, text
    return text


def assert_same_training(run_dir: Path, reference: list[dict[str, str]]) -> None:
    """All epochs logged once, in order, with the uninterrupted run's losses and rates."""
    rows = read_log(run_dir)
    assert [int(r["epoch"]) for r in rows] == list(range(1, EPOCHS + 1))
    for key in ("loss", "lr", "pruned_weights"):
        assert [r[key] for r in rows] == [r[key] for r in reference], key
    assert (run_dir / "model.pt").is_file() and not temp_files(run_dir)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_pretraining_killed_mid_run_resumes_from_its_checkpoint(pretrain_setup, tmp_path, signum):
    """A pretraining process killed after 2 logged epochs (SIGTERM: exit 143 without leftover
    temporary files; SIGKILL: -9) leaves a loadable checkpoint; rerun, it logs 'resumed from
    .../resume.pt at epoch N' with N >= 2 and ends exactly like an uninterrupted run."""
    command, reference = pretrain_setup
    run_dir = tmp_path / "run"
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(command(run_dir), stderr=log)
        deadline = time.monotonic() + 300
        while logged_epochs(run_dir) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "pretraining ended before it could be killed"
        proc.send_signal(signum)
        returncode = proc.wait(timeout=60)
    first = (tmp_path / "first.log").read_text()
    checkpoint = torch_load(run_dir / "resume.pt", "checkpoint")
    assert 2 <= checkpoint["epoch"] < EPOCHS
    if signum == signal.SIGTERM:
        assert returncode == 143, first
        assert "SIGTERM received: stopped" in first and "Traceback" not in first
        assert not temp_files(run_dir)
    else:
        assert returncode == -signal.SIGKILL

    second = finish(command(run_dir), tmp_path / "second.log")
    resumed = RESUMED.search(second)
    assert resumed, second
    assert int(resumed.group(1)) == checkpoint["epoch"] and int(resumed.group(2)) == EPOCHS
    assert_same_training(run_dir, reference)


@pytest.mark.slow
def test_kills_during_checkpoint_writes_keep_the_previous_checkpoint(pretrain_setup, tmp_path):
    """Killed (SIGKILL, SIGTERM, SIGKILL) while it writes resume.pt, i.e. while the
    temporary file of the next checkpoint exists, a run always leaves a resume.pt that loads
    and is no older than before; SIGTERM also removes the temporary file, and the next start
    removes what SIGKILL left. The run then finishes like an uninterrupted one."""
    command, reference = pretrain_setup
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    last_epoch, hits = 0, []
    for round_, signum in enumerate([signal.SIGKILL, signal.SIGTERM, signal.SIGKILL]):
        with open(tmp_path / f"round{round_}.log", "w") as log:
            proc = subprocess.Popen(command(run_dir), stderr=log)
            # Wait for progress beyond the checkpoint it resumed from, then for the next write.
            deadline = time.monotonic() + 300
            while logged_epochs(run_dir) <= last_epoch and proc.poll() is None:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            stale = temp_files(run_dir)
            writing = set()
            while proc.poll() is None and not writing:  # a write takes ~10 ms here
                writing = {n for n in temp_files(run_dir) - stale if n.startswith(".resume.pt.")}
                time.sleep(0.001)
            if writing:
                proc.send_signal(signum)
            returncode = proc.wait(timeout=60)
        logged = logged_epochs(run_dir)
        assert writing, f"round {round_}: the run ended before a checkpoint write was seen"
        checkpoint = torch_load(run_dir / "resume.pt", "checkpoint")  # loads: not truncated
        assert last_epoch <= checkpoint["epoch"] <= logged + 1 and checkpoint["epoch"] >= logged
        last_epoch = checkpoint["epoch"]
        left = temp_files(run_dir) - stale
        if signum == signal.SIGTERM:
            assert returncode == 143 and not left, (tmp_path / f"round{round_}.log").read_text()
        else:
            assert returncode == -signal.SIGKILL
            hits.append(bool(left & writing))
    assert any(hits), "no SIGKILL landed while the temporary checkpoint file existed"

    final = finish(command(run_dir), tmp_path / "final.log")
    assert RESUMED.search(final) and int(RESUMED.search(final).group(1)) == last_epoch
    assert_same_training(run_dir, reference)


def test_exit_on_sigterm_turns_sigterm_into_a_clean_exit_and_restores_the_handler():
    """Inside the block SIGTERM raises Terminated (exit status 143) in the main thread and
    `finally` blocks run; outside it the previous handler is back."""
    code = (
        "import os, signal, sys\n"
        "from sdclr.signals import exit_on_sigterm\n"
        "before = signal.getsignal(signal.SIGTERM)\n"
        "try:\n"
        "    with exit_on_sigterm():\n"
        "        try:\n"
        "            os.kill(os.getpid(), signal.SIGTERM)\n"
        "            signal.pause()\n"
        "        finally:\n"
        "            print('cleaned up', flush=True)\n"
        "except SystemExit as stop:\n"
        "    assert signal.getsignal(signal.SIGTERM) is before\n"
        "    print('exit', stop.code, type(stop).__name__, flush=True)\n"
        "    raise\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 143, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["cleaned up", "exit 143 Terminated"], proc.stdout
    assert "Traceback" not in proc.stderr


def test_the_status_command_is_a_site_setting(monkeypatch):
    """SDCLR_SLURM_STATUS_COMMAND=squeue puts `slurm-status-command: squeue` in the profile
    (the fix for clusters whose sacct has no accounting behind it); unset, the plugin chooses."""
    import yte

    monkeypatch.setenv("SDCLR_SLURM_STATUS_COMMAND", "squeue")
    with open(PROFILE / "config.yaml") as handle:
        assert yte.process_yaml(handle, require_use_yte=True)["slurm-status-command"] == "squeue"
    monkeypatch.delenv("SDCLR_SLURM_STATUS_COMMAND")
    with open(PROFILE / "config.yaml") as handle:
        assert "slurm-status-command" not in yte.process_yaml(handle, require_use_yte=True)


def test_profile_slurm_in_a_checkout_is_that_checkouts_profile(tmp_path, monkeypatch):
    """Snakemake resolves `--profile slurm` (snakemake.cli.get_profile_dir) in the working
    directory before ~/.config/snakemake: in the checkout's root the top-level link `slurm`
    wins over a profile of that name in the user's config directory (here another
    checkout's), and nothing needs linking there."""
    from snakemake.cli import get_profile_dir

    other = tmp_path / "config" / "snakemake" / "slurm"
    other.mkdir(parents=True)
    (other / "config.yaml").write_text("jobs: 1\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)
    assert get_profile_dir("slurm")[1].resolve() == (other / "config.yaml").resolve()
    monkeypatch.chdir(ROOT)
    directory, config_file = get_profile_dir("slurm")
    assert config_file.resolve() == (PROFILE / "config.yaml").resolve()
    assert os.readlink(ROOT / "slurm") == "workflow/profiles/slurm"  # relative: any clone


def test_the_profile_holds_site_facts_only(monkeypatch):
    """What jobs ask for is the experiment's (the config's `resources:`): the profile has no
    set-resources for a command-line --set-resources to replace, no set-threads, and its
    default-resources are the account and SLURM's append mode; it hands the partitions and
    GPU model to the rules (sdclr/pipeline/resources.py) through the environment."""
    import yte

    for name in ("ACCOUNT", "PARTITION", "GPU_PARTITION", "GPU_MODEL"):
        monkeypatch.setenv(f"SDCLR_SLURM_{name}", name.lower())
    with open(PROFILE / "config.yaml") as handle:
        profile = yte.process_yaml(handle, require_use_yte=True)
    assert "set-resources" not in profile and "set-threads" not in profile
    assert set(profile["default-resources"]) == {"slurm_extra", "slurm_account"}
    assert os.environ["SDCLR_SLURM_GPU_PARTITION"] == "gpu_partition"
    assert os.environ["SDCLR_SLURM_GPU_MODEL"] == "gpu_model"


def test_make_setup_links_nothing_into_the_users_config_and_points_out_an_old_link(tmp_path):
    """`make slurm-profile` (part of `make setup`) creates no ~/.config/snakemake/slurm (which
    would make every checkout use the last one set up), and names such a link left by an
    older version."""
    env = clean_env(HOME=str(tmp_path))
    env.pop("XDG_CONFIG_HOME", None)

    def make() -> str:
        proc = subprocess.run(
            ["make", "--no-print-directory", "-C", str(ROOT), "slurm-profile"],
            env=env,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout + proc.stderr

    link = tmp_path / ".config" / "snakemake" / "slurm"
    assert make() == "" and not link.exists() and not link.is_symlink()
    link.parent.mkdir(parents=True)
    link.symlink_to("/elsewhere/checkout/workflow/profiles/slurm")
    assert "is not needed" in make() and link.is_symlink()  # pointed out, left alone
