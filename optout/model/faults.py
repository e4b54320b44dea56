"""Test hooks for fault injection: the process kills itself (SIGKILL) at a named point when
`OPTOUT_FAULT` names it. Unset in normal use; the tests set it to prove recovery."""

from __future__ import annotations

import os
import signal

FAULT_ENV = "OPTOUT_FAULT"


def fault(point: str) -> None:
    """Die here, without any cleanup, if the environment asks for it."""
    if os.environ.get(FAULT_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)
