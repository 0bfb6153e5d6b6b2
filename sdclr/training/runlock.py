"""One writer per run directory: a lock that names its holder and dies with it.

A pretraining job that Snakemake lost track of (Snakemake itself was killed, a SLURM job
orphaned) may still be running when the same command is run again. Two processes writing one
run directory would interleave checkpoints; so each pretraining job holds an exclusive POSIX
record lock (``fcntl.lockf``, which NFS and Lustre honour across hosts) on ``run.lock`` in its
run directory while it runs. The kernel releases the lock when the holder exits, however it
exits (SIGKILL included), so a stale lock never blocks a rerun. The file keeps the holder's
host, process id and start time, for the message a second job gets.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sdclr.errors import RunDirectoryBusy

LOCK_NAME = "run.lock"


@contextmanager
def run_directory_lock(directory: str | os.PathLike) -> Iterator[Path]:
    """Hold the exclusive lock on ``directory/run.lock`` for the block.

    Raises :class:`RunDirectoryBusy`, naming the holder, when a live process holds it.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            holder = path.read_text().strip() or "another process"
            raise RunDirectoryBusy(
                f"{directory} is being written by {holder}; wait for that job to end or stop "
                "it, then run again (two jobs must never write one run directory)"
            ) from None
        os.ftruncate(fd, 0)
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {started}\n".encode())
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)


__all__ = ["LOCK_NAME", "run_directory_lock"]
