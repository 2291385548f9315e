"""Host statistics for /health and /metrics, in the seed API's field names."""

from __future__ import annotations

import os
from pathlib import Path

import psutil

GIB = 1024**3


def health_system(data_dir: Path) -> dict[str, object]:
    memory = psutil.virtual_memory()
    return {
        "cpu_usage": f"{psutil.cpu_percent(interval=None):.1f}%",
        "memory_usage": f"{memory.percent:.1f}%",
        "disk_usage": f"{psutil.disk_usage(str(_existing(data_dir))).percent:.1f}%",
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def metrics_system(data_dir: Path) -> dict[str, float]:
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(str(_existing(data_dir)))
    return {
        "cpu_usage_percent": round(psutil.cpu_percent(interval=None), 1),
        "memory_usage_percent": round(memory.percent, 1),
        "memory_available_gb": round(memory.available / GIB, 2),
        "disk_usage_percent": round(disk.percent, 1),
        "disk_free_gb": round(disk.free / GIB, 2),
    }


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
