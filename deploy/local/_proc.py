"""Shared child-process plumbing for the embedded servers."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Self


def death_signal_prefix(sig: signal.Signals) -> list[str]:
    """`setpriv --pdeathsig` makes the kernel signal the server when the thread that
    started it dies, so a SIGKILLed parent leaves no orphan server behind. (Caveat of
    pdeathsig: start servers from a long-lived thread, e.g. the main one.)"""
    setpriv = shutil.which("setpriv")
    return [setpriv, f"--pdeathsig={sig.name.removeprefix('SIG')}", "--"] if setpriv else []


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def terminate(proc: subprocess.Popen, sig: signal.Signals, timeout: float) -> None:
    """Ask the server to exit with `sig`; SIGKILL its whole process group if it doesn't."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
    proc.wait()


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the server and its forked helpers (backends, AOF rewriters) at once."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


class Server:
    """A context manager: started on entry, stopped (errors ignored) on exit."""

    def start(self) -> object:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def restart(self) -> object:
        self.stop()
        return self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()


class ChildServer(Server):
    """A server run as this process's child; `stop` sends its clean-shutdown signal."""

    process: subprocess.Popen | None
    stop_signal: signal.Signals = signal.SIGTERM
    stop_timeout: float = 15

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process, self.stop_signal, self.stop_timeout)
            self.process = None

    def kill(self) -> None:
        """SIGKILL, as in a crash."""
        if self.process is not None:
            kill_group(self.process)
            self.process = None
