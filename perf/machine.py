"""A description of the machine a benchmark ran on, for its report."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import socket
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

NVIDIA_SMI_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Machine:
    hostname: str
    cores: int
    cpu_model: str
    ram_gib: float
    gpu: str
    os: str
    python: str
    load_average: str
    packages: dict[str, str]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The first `model name` of /proc/cpuinfo (what the kernel reports; may be generic)."""
    try:
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ram_gib(meminfo: Path = Path("/proc/meminfo")) -> float:
    try:
        for line in meminfo.read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def gpu_description() -> str:
    """GPU names and memory from nvidia-smi, or "none" when there is no NVIDIA GPU."""
    if shutil.which("nvidia-smi") is None:
        return "none"
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "none"
    lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    return "; ".join(lines) if done.returncode == 0 and lines else "none"


def os_description(os_release: Path = Path("/etc/os-release")) -> str:
    try:
        for line in os_release.read_text(encoding="utf-8").splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.platform()


def package_versions(names: tuple[str, ...]) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def describe() -> Machine:
    return Machine(
        hostname=socket.gethostname(),
        cores=os.cpu_count() or 0,
        cpu_model=cpu_model(),
        ram_gib=ram_gib(),
        gpu=gpu_description(),
        os=os_description(),
        python=platform.python_version(),
        load_average=load_average(),
        packages=package_versions(
            ("onnxruntime", "torch", "nvidia-pytriton", "tritonclient", "numpy", "pillow")
        ),
    )


GENERIC_HOSTNAMES = frozenset({"", "localhost", "vm", "host", "ubuntu", "debian"})


def machine_tag(machine: Machine) -> str:
    """A file-name-safe tag: the hostname, unless it is generic or a container id; then the
    core count and CPU model (e.g. `2core-amd-epyc`)."""
    host = machine.hostname.lower()
    is_container_id = len(host) == 12 and all(ch in "0123456789abcdef" for ch in host)
    raw = host
    if host in GENERIC_HOSTNAMES or is_container_id:
        raw = f"{machine.cores}core-{machine.cpu_model}"
    cleaned = "".join(ch if ch.isalnum() else "-" for ch in raw.lower())
    while "--" in cleaned:
        cleaned = cleaned.replace("--", "-")
    return cleaned.strip("-")[:40].strip("-") or "machine"
