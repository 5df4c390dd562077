"""Ctrl-C while waiting for a worker's chunk raises at once."""

from __future__ import annotations

import os
import signal
import threading
from concurrent.futures import Future

import pytest

from cas.ingest.workers import SafePoints


def test_ctrl_c_while_waiting_on_a_future_raises_at_once():
    never_done: Future[int] = Future()
    with SafePoints() as interrupts:
        # the signal may land before the wait or during it: either way it raises
        timer = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            interrupts.result(never_done)  # before the change: waited forever (a chunk's whole time)
        timer.join()
    assert not never_done.done()
