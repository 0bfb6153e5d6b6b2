"""A throwaway one-node SLURM cluster for tests: munged, slurmctld and slurmd on localhost.

Everything lives in one directory (config, munge key and socket, state, spool, logs) and the
daemons run in the foreground as children of the test process, on free ports, so a test run
neither needs nor touches a system-wide SLURM or munge installation. No accounting (so
`sacct` does not work: the executor must use `squeue`), no cgroups
(`proctrack/linuxproc`, `task/none`), no GRES. Clients find the cluster through
``SLURM_CONF`` (see :attr:`SlurmCluster.env`). Needs root (slurmd runs jobs as their user)
and Debian's ``slurm-wlm`` and ``munge`` packages (``make slurm-packages``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "scancel", "scontrol", "srun")
PARTITION = "test"
NODE = "testnode"


# The executor plugin waits 10 s longer after every status check that finds no finished job
# (up to 180 s): right for a busy cluster, slow for a test of many jobs of a few seconds each.
# `snakemake_with_quick_status_checks()` runs Snakemake with that wait capped; everything
# else (submission, sbatch options, status queries, retries) is the plugin's own.
QUICK_STATUS_CHECKS = """
import sys
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
interval = RemoteExecutor.next_seconds_between_status_checks
RemoteExecutor.next_seconds_between_status_checks = interval.setter(
    lambda self, seconds: interval.fset(self, min(seconds, {cap}))
)
from snakemake.cli import main
sys.argv[0] = "snakemake"
main()
"""


def snakemake_with_quick_status_checks(cap_seconds: float = 3) -> list[str]:
    """The command to use instead of ``snakemake``: status checks at most ``cap_seconds`` apart."""
    return [sys.executable, "-c", QUICK_STATUS_CHECKS.format(cap=cap_seconds)]


def unavailable_reason() -> str | None:
    """Why a test cluster cannot be started here, or None when it can."""
    if os.geteuid() != 0:
        return "starting a test SLURM cluster needs root (slurmd runs jobs as their owner)"
    missing = [name for name in DAEMONS + CLIENTS if _which(name) is None]
    if missing:
        return (
            f"SLURM/munge not installed (missing {', '.join(missing)}); "
            "`make slurm-packages` installs Debian's slurm-wlm and munge as root"
        )
    return None


def _which(name: str) -> str | None:
    # The daemons live in /usr/sbin, which a non-login PATH may lack.
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SlurmCluster:
    """``start()`` it, submit with :attr:`env`, ``stop()`` it (kills only its own daemons)."""

    def __init__(self, root: Path, cpus: int = 4):
        # More CPUs than the machine may have (config_overrides): jobs spend much of their
        # time starting up and waiting for status checks, so a few more run side by side.
        self.root = Path(root)
        self.cpus = cpus
        self.partition = PARTITION
        self.processes: dict[str, subprocess.Popen] = {}
        self.conf = self.root / "slurm.conf"
        self.bin = self.root / "bin"
        self.env = {
            **os.environ,
            "SLURM_CONF": str(self.conf),
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
        }
        for name in ("SLURM_JOB_ID", "SLURM_JOBID", "SQUEUE_FORMAT", "SLURM_PARTITION"):
            self.env.pop(name, None)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, timeout: float = 90) -> SlurmCluster:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)  # munged wants its socket's directory searchable
        for sub in ("state", "spool"):
            (self.root / sub).mkdir(exist_ok=True)
        key = self.root / "munge.key"
        subprocess.run(
            [_which("mungekey"), "--create", "--keyfile", str(key), "--bits", "1024"],
            check=True,
            capture_output=True,
        )
        key.chmod(0o600)
        self._write_config()
        self._write_srun_wrapper()
        try:
            self._spawn(
                "munged",
                [
                    _which("munged"),
                    "--foreground",
                    "--force",
                    f"--key-file={key}",
                    f"--socket={self.root / 'munge.socket'}",
                    f"--pid-file={self.root / 'munged.pid'}",
                    f"--log-file={self.root / 'munged.log'}",
                    f"--seed-file={self.root / 'munged.seed'}",
                ],
            )
            self._wait_for(lambda: (self.root / "munge.socket").exists(), 20, "munged socket")
            self._spawn("slurmctld", [_which("slurmctld"), "-D", "-i", "-f", str(self.conf)])
            self._spawn("slurmd", [_which("slurmd"), "-D", "-N", NODE, "-f", str(self.conf)])
            self._wait_for(self._node_idle, timeout, "the node to become idle")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Cancel every job, wait for them to go, then end the daemons this object started."""
        if "slurmctld" in self.processes and self.processes["slurmctld"].poll() is None:
            self.run("scancel", "--partition", self.partition, check=False)
            try:
                self._wait_for(lambda: not self.active_jobs(), 30, "cancelled jobs to end")
            except RuntimeError:
                pass
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.processes.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- queries ------------------------------------------------------------------------------

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [_which(args[0]), *args[1:]],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=check,
        )

    def jobs(self) -> dict[str, dict[str, str]]:
        """Every job slurmctld still remembers (MinJobAge is long): id -> name, state, ..."""
        fields = ("id", "name", "state", "comment", "partition", "reason")
        out = self.run("squeue", "--states=all", "--noheader", "--format=%i|%j|%T|%k|%P|%r").stdout
        rows = (dict(zip(fields, line.split("|"), strict=False)) for line in out.splitlines())
        return {row["id"]: row for row in rows if row.get("id")}

    def active_jobs(self) -> list[str]:
        done = {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}
        return [i for i, job in self.jobs().items() if job["state"] not in done]

    def logs(self) -> str:
        """The daemons' logs, for failure messages."""
        parts = []
        for name in ("slurmctld.log", "slurmd.log", "munged.log"):
            path = self.root / name
            if path.exists():
                tail = "\n".join(path.read_text(errors="replace").splitlines()[-40:])
                parts.append(f"--- {name} (tail)\n{tail}")
        return "\n".join(parts)

    # -- internals ----------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> None:
        out = open(self.root / f"{name}.out", "wb")  # noqa: SIM115 - lives as long as the daemon
        self.processes[name] = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        out.close()

    def _node_idle(self) -> bool:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                output = (self.root / f"{name}.out").read_text(errors="replace")
                raise RuntimeError(f"{name} exited ({proc.returncode}):\n{output}\n{self.logs()}")
        proc = self.run("sinfo", "--noheader", "--format=%T", check=False)
        return proc.returncode == 0 and proc.stdout.strip() == "idle"

    def _wait_for(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.5)
        raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}\n{self.logs()}")

    def _write_srun_wrapper(self) -> None:
        """An ``srun`` first on the jobs' PATH that points the real one at this cluster.

        Inside a job, the executor plugin's jobstep part runs the rule through ``srun`` with
        every ``SLURM_*`` variable but the job's identity removed from the environment,
        ``SLURM_CONF`` included, so the real ``srun`` would look for /etc/slurm/slurm.conf.
        (A real cluster has its configuration there or served by slurmctld.)
        """
        self.bin.mkdir(exist_ok=True)
        wrapper = self.bin / "srun"
        wrapper.write_text(f'#!/bin/sh\nSLURM_CONF={self.conf} exec {_which("srun")} "$@"\n')
        wrapper.chmod(0o755)

    def _write_config(self) -> None:
        host = socket.gethostname().split(".")[0]
        root = self.root
        (root / "plugstack.conf").write_text("")
        self.conf.write_text(
            f"""# Generated by tests/slurm_cluster.py
ClusterName=sdclrtest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root / "munge.socket"}
StateSaveLocation={root / "state"}
SlurmdSpoolDir={root / "spool"}
SlurmctldPidFile={root / "slurmctld.pid"}
SlurmdPidFile={root / "slurmd.pid"}
SlurmctldLogFile={root / "slurmctld.log"}
SlurmdLogFile={root / "slurmd.log"}
PlugStackConfig={root / "plugstack.conf"}
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
# squeue must still show finished jobs when Snakemake asks (the executor's rule of thumb:
# MinJobAge >= 3 x the first status-check delay).
MinJobAge=3600
KillWait=10
JobRequeue=1
# Memory is not a consumable here (CR_Core) and the node may claim more than it has, so
# the profile's real memory requests pass unchanged.
SlurmdParameters=config_overrides
NodeName={NODE} NodeHostname={host} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory=512000
PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
"""
        )
