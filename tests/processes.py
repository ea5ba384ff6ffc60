"""What a test needs to start a server in its own process group, wait for it and stop it, even when it fails."""

import os
import signal
import subprocess
import time
from pathlib import Path

from course_lib.serving import free_port  # noqa: F401  (the tests' port picker too)


def wait_for_server(process: subprocess.Popen, answers, log: Path, what: str, seconds: float, pause: float) -> None:
    """Poll `answers()` (it raises OSError while the server is not up yet) until it returns; fail with the log's
    tail when the process exits first or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            answers()
            return
        except OSError:
            time.sleep(pause)
    raise AssertionError(f"{what} did not answer in {seconds} s:\n{log.read_text()[-3000:]}")


def stop_group(process: subprocess.Popen, log_file) -> None:
    """SIGTERM to the process group (started with start_new_session=True), SIGKILL if it lingers; close its log."""
    try:
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            os.killpg(process.pid, sig)
            try:
                process.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue
    except ProcessLookupError:
        pass  # it had exited already
    finally:
        log_file.close()
