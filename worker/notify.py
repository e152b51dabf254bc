"""systemd's notify protocol (sd_notify) over the `NOTIFY_SOCKET` datagram socket.

`Type=notify` units get `READY=1` once the worker can run jobs, `STATUS=...` with what it
is doing (shown by `systemctl status`), `WATCHDOG=1` pings and `STOPPING=1` on shutdown.
Without `NOTIFY_SOCKET` (not under systemd) every call does nothing.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import structlog

log = structlog.get_logger("stoker.notify")


def notify_address(value: str | None) -> str | None:
    """The socket address in `NOTIFY_SOCKET`: a path, or `@name` for the abstract namespace."""
    if not value or not (value.startswith("/") or value.startswith("@")):
        return None
    return "\0" + value[1:] if value.startswith("@") else value


def watchdog_interval(env: Mapping[str, str], pid: int) -> float | None:
    """The watchdog timeout in seconds systemd asked this process to honour, else None.

    `WATCHDOG_USEC` applies to the process named in `WATCHDOG_PID` (all when unset).
    """
    usec, owner = env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or int(usec) == 0:
        return None
    if owner and owner.isdigit() and int(owner) != pid:
        return None
    return int(usec) / 1_000_000


class Notifier:
    """Sends notify messages; silent and free when not run by systemd."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.address = notify_address(env.get("NOTIFY_SOCKET"))
        self.watchdog_s = watchdog_interval(env, os.getpid()) if self.address else None
        self._sock: socket.socket | None = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """One datagram of `KEY=value` lines; False when it could not be sent."""
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.setblocking(False)
            self._sock.sendto("\n".join(fields).encode(), self.address)
            return True
        except OSError as exc:
            if not self._warned:
                log.warning("systemd notify failed", error=str(exc))
                self._warned = True
            return False

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", *((f"STATUS={status}",) if status else ()))

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def stopping(self, status: str = "") -> bool:
        return self.send("STOPPING=1", *((f"STATUS={_one_line(status)}",) if status else ()))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _one_line(text: str) -> str:
    return " ".join(text.split())[:400]
