"""Memory of the processes a benchmark runs, sampled in the background with psutil.

A watched process counts with all its descendants: tritonserver with its Python-backend stubs
(each facet_ort / facet_openvino / BLS model instance is a `triton_python_backend_stub`), the
gateway with anything it spawns. RSS is summed as asked; since summed RSS counts shared pages
(libraries, the stubs' shared-memory tensors) once per process, the proportional set size (PSS,
each shared page split between its users) is summed beside it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import psutil

MB = 1024.0 * 1024.0
DEFAULT_INTERVAL_S = 0.5


@dataclass(frozen=True)
class Usage:
    rss_mb: float
    pss_mb: float
    processes: int


def tree(pid: int) -> list[psutil.Process]:
    """The process and its descendants still running (empty when it has ended)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def tree_usage(pid: int) -> Usage:
    """RSS and PSS of a process tree, summed, in MiB."""
    return usage_of(tree(pid))


def process_usage(pid: int) -> Usage:
    """RSS and PSS of one process alone, in MiB."""
    try:
        return usage_of([psutil.Process(pid)])
    except psutil.Error:
        return Usage(0.0, 0.0, 0)


def usage_of(processes: list[psutil.Process]) -> Usage:
    rss = pss = 0.0
    counted = 0
    for process in processes:
        try:
            info = process.memory_full_info()
        except psutil.AccessDenied:
            with contextlib.suppress(psutil.Error):
                rss += process.memory_info().rss
                counted += 1
            continue
        except psutil.Error:
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
        counted += 1
    return Usage(rss / MB, pss / MB, counted)


def find_child(argument: str) -> int | None:
    """The pid of a descendant of this process whose command line holds `argument` exactly
    (e.g. `--grpc-port=8123` picks one tritonserver among several)."""
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if argument in process.cmdline():
                return int(process.pid)
    return None


@dataclass
class Peak:
    rss_mb: float = 0.0
    pss_mb: float = 0.0
    processes: int = 0
    step: str = ""

    def update(self, usage: Usage, step: str) -> None:
        if usage.rss_mb > self.rss_mb:
            self.rss_mb, self.processes, self.step = usage.rss_mb, usage.processes, step
        self.pss_mb = max(self.pss_mb, usage.pss_mb)


# A watched process: its name in the report and how to find its pid now (None: not running).
PidSource = Callable[[], int | None]


@dataclass
class MemorySampler:
    """Samples every watched process tree each `interval_s` from a daemon thread, keeping the
    overall peak, the peak within each step (set `step` as the run moves on) and a timeline."""

    sources: dict[str, PidSource]
    interval_s: float = DEFAULT_INTERVAL_S
    solo: set[str] = field(default_factory=set)  # sources measured without their children
    step: str = "start-up"
    peaks: dict[str, Peak] = field(default_factory=dict)
    step_peaks: dict[str, dict[str, float]] = field(default_factory=dict)  # name → step → MiB
    timeline: list[list[float | str]] = field(default_factory=list)  # [s, name, RSS MiB]
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _started: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def sample(self) -> None:
        """One sample of every source (also called by the thread)."""
        now = time.monotonic() - self._started
        for name, source in self.sources.items():
            pid = source()
            if pid is None:
                continue
            usage = process_usage(pid) if name in self.solo else tree_usage(pid)
            if usage.processes == 0:
                continue
            with self._lock:
                self.peaks.setdefault(name, Peak()).update(usage, self.step)
                by_step = self.step_peaks.setdefault(name, {})
                by_step[self.step] = max(by_step.get(self.step, 0.0), usage.rss_mb)
                self.timeline.append([round(now, 2), name, round(usage.rss_mb, 1)])
        self.samples += 1

    def start(self) -> None:
        self._started = time.monotonic()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10 * self.interval_s + 5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error, OSError):
                self.sample()
            self._stop.wait(self.interval_s)

    @contextlib.contextmanager
    def running(self) -> Iterator[MemorySampler]:
        self.start()
        try:
            yield self
        finally:
            self.stop()
            with contextlib.suppress(psutil.Error, OSError):
                self.sample()  # the last state, so short runs have their end too
