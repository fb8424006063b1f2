"""Loopback TCP ports for the embedded servers."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on right now (the kernel's pick; racy, but only briefly)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> bool:
    """True if something already listens on 127.0.0.1:port. Checked before starting a
    server on a fixed port so a readiness probe cannot mistake another server for ours."""
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0
