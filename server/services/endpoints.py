"""Where a service's URL points, and whether anything answers there."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", ""})


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    @classmethod
    def of(cls, url: str, default_port: int) -> Endpoint:
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or default_port)

    @property
    def local(self) -> bool:
        """Only a service on this machine is ours to start."""
        return self.host in LOCAL_HOSTS

    def listening(self, timeout: float = 1.0) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout):
                return True
        except OSError:
            return False

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"
