"""A test seam: die at a named point, exactly as a crash there would.

The fault tests prove what survives a crash at the worst moment, such as the API dying
after it committed a job and before it published it. Nothing happens unless the
`CRASH_AT` setting names the point; it is for tests only and never set in production.
"""

from __future__ import annotations

import logging
import os
import signal

from server.settings import CrashPoint, Settings

log = logging.getLogger(__name__)


def crash_point(settings: Settings, point: CrashPoint) -> None:
    if settings.crash_at == point:
        log.critical("CRASH_AT=%s: this process kills itself here", point)
        os.kill(os.getpid(), signal.SIGKILL)
