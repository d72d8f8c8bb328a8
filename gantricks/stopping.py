"""Asked to stop: SIGTERM (what schedulers send before a kill) and SIGINT (Ctrl-C) let a run write its checkpoint
first (``gantricks train``), and a bench pass the request on to its workers (``gantricks bench``)."""
from __future__ import annotations

import os
import signal
import threading
from typing import Any


class StopRequest:
    """SIGTERM and SIGINT set ``signum`` for the loop to save and stop at the next step; a second one
    exits at once (Ctrl-C raises KeyboardInterrupt, SIGTERM takes its default action)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, enabled: bool = True):
        self.signum: int | None = None
        self._old: dict[int, Any] = {}
        self.enabled = enabled and threading.current_thread() is threading.main_thread()

    def install(self) -> None:
        """Take the signals; a stop already asked of the handler this one replaces (a bench's, asked while its
        run was being set up) is this one's too, so the run saves and stops at once rather than trains on."""
        if self.enabled:
            for sig in self.SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)
                outer = getattr(self._old[sig], "__self__", None)
                if isinstance(outer, StopRequest) and outer.signum is not None and self.signum is None:
                    self.signum = outer.signum

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}

    def _handle(self, signum: int, frame) -> None:
        if self.signum is None:
            self.signum = signum
            return
        self.restore()
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
