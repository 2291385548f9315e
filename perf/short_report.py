"""The one-page reports of the single-target benchmarks (perf.context_search,
perf.context_index, perf.recognition): where each goes, its machine line, and the raw JSON
kept beside it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from perf.machine import Machine, machine_tag


def report_path(out: Path, machine: Machine, kind: str) -> tuple[str, Path]:
    """Today's date and `out`/<date>-<machine>-<kind>.md (`out` created)."""
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    out.mkdir(parents=True, exist_ok=True)
    return day, out / f"{day}-{machine_tag(machine)}-{kind}.md"


def machine_line(machine: Machine, load: str | None = None) -> str:
    """`load`: how the load average is given (default: now's)."""
    load = load or f"load average {machine.load_average}"
    return (
        f"Machine: {machine.cores} cores, {machine.cpu_model}, {machine.ram_gib:.0f} GiB RAM, "
        f"GPU: {machine.gpu}; {load}."
    )


def save_report(path: Path, lines: list[str], raw: dict[str, Any]) -> Path:
    """The Markdown at `path`, and `raw` as JSON in raw/ beside it, named alike."""
    path.write_text("\n".join(lines))
    folder = path.parent / "raw"
    folder.mkdir(exist_ok=True)
    (folder / f"{path.stem}.json").write_text(json.dumps(raw, indent=2))
    return path
