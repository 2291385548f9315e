"""The job queue: huey carries job ids between the API and the workers.

huey was chosen over hand-written leasing because one task library gives both backends we need:
`SqliteHuey` (embedded, no extra server, the default) and `RedisHuey` (several gateway processes
sharing one queue, `FACET_REDIS_URL`). Workers are plain threads of the gateway process that
dequeue and execute; huey's own consumer is not used because it installs process-wide signal
handlers that would fight uvicorn's."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from huey import Huey, RedisHuey, SqliteHuey

from gateway.settings import Settings

log = logging.getLogger(__name__)
IDLE_POLL_S = 0.2
TASK_NAME = "facet.run_job"


def build_huey(settings: Settings) -> Huey:
    if url := settings.redis_url.get_secret_value():
        return RedisHuey("facet", url=url, results=False)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("facet", filename=str(settings.data_dir / "queue.sqlite3"), results=False)


class JobQueue:
    def __init__(self, huey: Huey, handler: Callable[[str], None]) -> None:
        self._huey = huey
        self.shared = isinstance(huey, RedisHuey)
        self.backend = "redis" if self.shared else "sqlite"
        self._enqueue = huey.task(name=TASK_NAME)(handler)
        self._stop = threading.Event()
        # Set on enqueue so an idle worker of this process starts at once instead of at its next
        # poll (the benchmark saw the 0.2 s poll as most of the gateway's own overhead).
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    def enqueue(self, job_id: str) -> None:
        """Send a job's message. A failure here loses nothing: the job is already `queued` in
        the store, and the heartbeat (gateway/jobs/recovery.py) sends it again."""
        try:
            self._enqueue(job_id)
        except Exception as error:  # the queue's own errors (redis-py's) vary by backend
            log.warning("enqueueing job %s failed (%s); the heartbeat resends it", job_id, error)
        self._wake.set()

    def ping(self) -> bool:
        """Whether the queue's storage answers (for /health)."""
        try:
            self._huey.pending_count()
        except Exception:
            return False
        return True

    def pending_ids(self) -> set[str]:
        """Job ids whose messages are still waiting in the queue."""
        return {str(task.args[0]) for task in self._huey.pending() if task.args}

    def start(self, workers: int) -> None:
        self._stop.clear()
        for index in range(workers):
            thread = threading.Thread(target=self._work, name=f"facet-job-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads.clear()

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                task = self._huey.dequeue()
            except Exception:  # a storage hiccup must not kill the worker thread
                log.exception("dequeue failed")
                task = None
            if task is None:
                # Polling still matters: other processes (Redis mode) enqueue without waking us.
                self._wake.wait(IDLE_POLL_S)
                self._wake.clear()
                continue
            self._huey.execute(task)
