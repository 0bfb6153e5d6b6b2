"""SIGTERM as a clean, non-zero exit, for jobs that a scheduler may stop.

SLURM sends SIGTERM to a job's processes when it preempts, cancels or times out the job, and
SIGKILL ``KillWait`` seconds later. Python's default for SIGTERM is to die on the spot, which
skips every ``finally`` block: a checkpoint being written would leave its temporary file
behind. Inside :func:`exit_on_sigterm` the signal raises :class:`Terminated` (a
``SystemExit``) instead, so the stack unwinds: ``sdclr.io`` removes its temporary file, the
previous checkpoint stays as it was, and the process exits with status 143 (128 + 15, what a
shell reports for a process killed by SIGTERM), so Snakemake and SLURM see a failed job.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Terminated(SystemExit):
    """Raised in the main thread when the process receives a termination signal."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum
        self.signame = signal.Signals(signum).name


@contextmanager
def exit_on_sigterm(signums: tuple[int, ...] = (signal.SIGTERM,)) -> Iterator[None]:
    """Within the block, ``signums`` raise :class:`Terminated` in the main thread.

    Only the first signal raises; repeats while the stack unwinds are ignored, so cleanup
    code is not interrupted a second time (SIGKILL still ends a cleanup that hangs). The
    previous handlers are restored on exit. Outside the main thread (where Python cannot
    install handlers) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum, frame):
        if received:
            return
        received.append(signum)
        raise Terminated(signum)

    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


__all__ = ["Terminated", "exit_on_sigterm"]
