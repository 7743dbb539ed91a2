"""A bound on any call a FIFO could block: the tests of FIFOs never hang, whatever the code does."""

import os
import threading

import pytest


def bounded(call, fifo, seconds: float = 60):
    """call()'s result (or its exception), in a thread; a call still blocked on `fifo` after `seconds`
    is freed (a writer opens and closes the FIFO, so a waiting reader sees its end) and fails the test."""
    result = {}

    def run():
        try:
            result["value"] = call()
        except BaseException as err:  # handed to the caller below
            result["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
        pytest.fail(f"blocked on the FIFO {fifo}")
    if "error" in result:
        raise result["error"]
    return result.get("value")
