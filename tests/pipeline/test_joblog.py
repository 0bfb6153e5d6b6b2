"""A job's log keeps every attempt (sdclr/pipeline/joblog.py): through Snakemake itself, which
deletes a
job's log before each attempt, a job that fails and is retried leaves one log with both
attempts, each after its own attempt line."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sdclr.pipeline.joblog import ATTEMPT_LINE, logged

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# The job fails on its first attempt, after printing a line, and succeeds on the second.
SNAKEFILE = """
from sdclr.pipeline.joblog import logged

rule flaky:
    output: "out.txt"
    log: "logs/flaky.log"
    shell:
        logged(
            "n=$(cat count 2>/dev/null || echo 0); echo $((n + 1)) > count; "
            "echo \\"attempt $((n + 1)) says hello\\" 2>> {log:q} >&2; "
            "if [ $n = 0 ]; then echo 'SIGTERM received: stopped' 2>> {log:q} >&2; exit 143; fi; "
            "touch {output} 2>> {log:q}"
        )
"""


def test_a_retried_jobs_log_keeps_both_attempts(tmp_path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "SLURM_JOB_ID": "4242",
        "SLURM_RESTART_COUNT": "1",
    }
    proc = subprocess.run(
        [str(BIN / "snakemake"), "--cores", "1", "--retries", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = (tmp_path / "logs" / "flaky.log").read_text().splitlines()
    attempts = [i for i, line in enumerate(lines) if line.startswith(ATTEMPT_LINE)]
    assert len(attempts) == 2, lines
    first = lines[attempts[0] : attempts[1]]
    assert "attempt 1 says hello" in first and "SIGTERM received: stopped" in first
    assert lines[attempts[1] + 1 :] == ["attempt 2 says hello"]
    assert lines[attempts[0]].endswith(" on " + os.uname().nodename + ", SLURM job 4242, restart 1")


def test_a_command_that_would_overwrite_its_log_is_refused():
    with pytest.raises(ValueError, match="appends its stderr"):
        logged("python x.py 2> {log:q}")
