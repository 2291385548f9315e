"""CPU accounting around a measurement: how many cores our own processes used (the benchmark,
Triton and its stubs, the gateway) and how many went to other work on the machine.

On a shared box the second number is what makes one repeat slower than the next; the benchmark
reports it next to every point and re-runs a measurement that other work disturbed.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import psutil


def _busy_seconds() -> float:
    """CPU seconds all cores spent not idle (steal included: the hypervisor took them)."""
    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    total = sum(times)
    # guest time is already counted inside user/nice on Linux.
    total -= getattr(times, "guest", 0.0) + getattr(times, "guest_nice", 0.0)
    return float(total - idle)


def _own_seconds() -> float:
    """CPU seconds used by this process and all its descendants still running."""
    me = psutil.Process()
    processes = [me]
    with contextlib.suppress(psutil.Error):
        processes += me.children(recursive=True)
    total = 0.0
    for process in processes:
        try:
            cpu = process.cpu_times()
        except psutil.Error:
            continue
        total += cpu.user + cpu.system
    return total


@dataclass(frozen=True)
class CpuUse:
    """Average cores busy during a window: ours and everybody else's."""

    own_cores: float
    other_cores: float


class CpuMeter:
    """Call start() before and stop() after the measured work."""

    def __init__(self) -> None:
        self._started = 0.0
        self._busy = 0.0
        self._own = 0.0

    def start(self) -> None:
        self._started = time.monotonic()
        self._busy = _busy_seconds()
        self._own = _own_seconds()

    def stop(self) -> CpuUse:
        wall = max(time.monotonic() - self._started, 1e-9)
        busy = _busy_seconds() - self._busy
        own = _own_seconds() - self._own
        return CpuUse(own_cores=own / wall, other_cores=max(0.0, busy - own) / wall)
