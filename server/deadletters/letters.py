"""A dead message as an operator sees it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

_DURATION = re.compile(r"(\d+)\s*([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class DeadLetter:
    job_id: str
    reason: str  # expired, rejected, delivery_limit, maxlen
    deaths: int
    died_at: datetime | None

    def age(self, now: datetime) -> timedelta | None:
        return now - self.died_at if self.died_at else None


def read_letter(body: bytes | str, headers: dict[str, Any]) -> DeadLetter:
    """From a Celery task message (`[args, kwargs, embed]`) and its x-death headers."""
    args = json.loads(body)[0]
    deaths = headers.get("x-death") or []
    # RabbitMQ keeps the deaths most recent first: the last one is why the message is in the
    # dead-letter queue (a job that waited out a retry first died `expired` in a wait queue).
    last = deaths[0] if deaths else {}
    reason = headers.get("x-last-death-reason") or last.get("reason") or "unknown"
    died_at = last.get("time")
    if isinstance(died_at, (int, float)):
        died_at = datetime.fromtimestamp(died_at, UTC)
    elif isinstance(died_at, datetime) and died_at.tzinfo is None:
        died_at = died_at.replace(tzinfo=UTC)
    return DeadLetter(
        str(args[0]), _text(reason), sum(int(d.get("count", 1)) for d in deaths), died_at
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_duration(text: str) -> timedelta:
    """`90s`, `15m`, `2h`, `1d`, or a combination such as `1h30m`."""
    parts = _DURATION.findall(text.strip().lower())
    if not parts or "".join(n + u for n, u in parts) != text.strip().lower().replace(" ", ""):
        raise ValueError(f"{text!r} is not a duration like 30s, 15m, 2h or 1d")
    return timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in parts))


@dataclass(frozen=True)
class Selection:
    job_id: str | None = None
    reason: str | None = None
    older_than: timedelta | None = None
    limit: int | None = None

    def matches(self, letter: DeadLetter, now: datetime) -> bool:
        if self.job_id and letter.job_id != self.job_id:
            return False
        if self.reason and letter.reason != self.reason:
            return False
        age = letter.age(now)
        return not (self.older_than and (age is None or age < self.older_than))
