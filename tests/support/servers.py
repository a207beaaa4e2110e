"""Worker processes and a stand-in server for the tests that kill them (tests/test_tasks.py,
tests/test_server_kill.py)."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from core.storage.leases import process_alive
from core.work import tasks
from tests.support.gate import entered, open_gate
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


class Worker:
    """A `rashomon worker --tasks-only` process whose output is read by a thread (never a blocking read
    in the test), so the test can wait for a line with a deadline."""

    def __init__(self, *arguments: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "core", "worker", "--tasks-only", "--poll", "0.2", "--no-warm-up", *arguments],
            cwd=ROOT, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for_line(self, text: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"the worker never printed {text!r}: {''.join(self.output)[-1500:]}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            self.output.append(line)
            if text in line:
                return

    def finish(self, timeout: float = 300.0) -> str:
        """Wait for the process to end by itself; everything it printed."""
        self.process.wait(timeout=timeout)
        while not self.lines.empty():
            self.output.append(self.lines.get())
        return "".join(self.output)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)


def stand_in_server(tmp_path: Path, workers: int) -> tuple[subprocess.Popen, Path]:
    """A process standing in for the Streamlit server: it starts its local workers, writes their pids to the
    returned file and waits to be killed."""
    script = ("import sys, time; from pathlib import Path; from core.work.tasks import LocalWorkers\n"
              "workers = LocalWorkers(int(sys.argv[3]), Path(sys.argv[1])); workers.ensure()\n"
              "Path(sys.argv[2]).write_text(' '.join(map(str, workers.pids()))); time.sleep(600)\n")
    pid_file = tmp_path / "pids"
    server = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "logs"), str(pid_file), str(workers)],
                              cwd=ROOT, env=os.environ.copy())
    return server, pid_file



def kill_the_server_mid_task(engine, task_id: int, gate: Path, tmp_path: Path,
                             while_held: Callable[[], bool] = lambda: True) -> str:
    """A stand-in server whose one worker holds `task_id` at the gate is killed; its worker ends with it, the
    task's lease is stale at once (`while_held` is checked meanwhile), the gate opens and a new worker runs
    whatever is queued to the end. Everything that worker printed."""
    server, pid_file = stand_in_server(tmp_path, workers=1)
    try:
        [holder] = wait_until(lambda: entered(gate), timeout=240, what="the server's worker at the gate")
        assert pid_file.read_text().split() == [str(holder)]
        assert tasks.get_task(engine, task_id).status == "running"
    finally:
        server.kill()
        server.wait(timeout=30)
    wait_until(lambda: not process_alive(holder), timeout=30, what="the worker to end with its server")
    assert tasks.is_stale(tasks.get_task(engine, task_id))  # seen as abandoned at once, not after a lease
    assert while_held()
    open_gate(gate)
    return Worker("--once").finish()


def text_pages(pages: dict[str, str]):
    """A fetcher that answers each address of `pages` with its plain text, as a web server would (no network)."""
    from core.library.fetch import FetchResult

    def fetcher(url: str) -> FetchResult:
        return FetchResult(url=url, final_url=url, status=200, content_type="text/plain", charset="utf-8",
                           body=pages[url].encode(), text=pages[url])

    return fetcher
