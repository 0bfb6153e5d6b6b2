"""SIGTERM and SIGINT as a clean, non-zero exit, for jobs that a scheduler (or a person) stops.

SLURM sends SIGTERM to a job's processes when it preempts, cancels or times out the job, and
SIGKILL ``KillWait`` seconds later; Ctrl-C sends SIGINT. Python's default for SIGTERM is to
die on the spot, which skips every ``finally`` block. Inside :func:`exit_on_sigterm` the signal
raises :class:`Terminated` (a ``SystemExit``) instead, so the stack unwinds and the process
exits with status 128 + the signal's number (143 for SIGTERM, 130 for SIGINT), which Snakemake
and SLURM see as a failed job.

A signal that arrives inside :func:`critical_section` (``sdclr.io`` wraps every file write in
one) is held until the section ends: the file being written is either renamed into place
whole or removed, never left as a stray temporary, and only then does the job stop.
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


class _State:
    """The main thread's critical-section depth and the signal held back meanwhile."""

    depth = 0
    pending: int | None = None


@contextmanager
def critical_section() -> Iterator[None]:
    """Hold back :class:`Terminated` until the block has finished (or failed) on its own.

    Outside the main thread this does nothing (signal handlers only run in the main thread).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _State.depth += 1
    try:
        yield
    finally:
        _State.depth -= 1
        if _State.depth == 0 and _State.pending is not None:
            signum, _State.pending = _State.pending, None
            raise Terminated(signum)


@contextmanager
def exit_on_sigterm(
    signums: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT),
) -> Iterator[None]:
    """Within the block, ``signums`` raise :class:`Terminated` in the main thread.

    Only the first signal raises; repeats while the stack unwinds are ignored, so cleanup
    code is not interrupted a second time (SIGKILL still ends a cleanup that hangs). Inside a
    :func:`critical_section` the first signal is held until the section ends. The previous
    handlers are restored on exit. Outside the main thread this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum, frame):
        if received:
            return
        received.append(signum)
        if _State.depth > 0:
            _State.pending = signum
            return
        raise Terminated(signum)

    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
        _State.pending = None


__all__ = ["Terminated", "critical_section", "exit_on_sigterm"]
