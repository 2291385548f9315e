"""perf/gpu_probe.py without a GPU: the tiny CPU mode end to end (its table, every registered
architecture in it, positive MACs), the time budget, --help, the peak table, and the torch-only
fallback builders against the export specs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from export.registry import MODELS
from perf import gpu_probe


def table_rows(markdown: str) -> tuple[list[str], list[dict[str, str]]]:
    """The header and rows of the report's results table."""
    lines = [line for line in markdown.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = [
        dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")), strict=True))
        for line in lines[1:]
    ]
    return header, rows


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("probe") / "probe.md"
    assert gpu_probe.main(["--tiny", "--out", str(out)]) == 0
    return out.read_text(encoding="utf-8")


def test_tiny_run_writes_the_table(tiny_report: str) -> None:
    header, rows = table_rows(tiny_report)
    assert header == list(gpu_probe.COLUMNS)
    assert "NOT a GPU run" in tiny_report
    assert "FlopCounterMode" in tiny_report
    eager = [r for r in rows if r["mode"] == gpu_probe.EAGER]
    assert {r["batch"] for r in eager} == {"1", "2"}
    assert {r["dtype"] for r in rows} == {"fp32"}
    for r in eager + [r for r in rows if r["mode"] == gpu_probe.CHANNELS_LAST]:
        assert r["status"] == "ok", r
        assert float(r["ms/batch (median)"].replace(",", "")) > 0
        assert r["% of FP16 peak"] == "n/a"  # no peak on a CPU
    graphs = [r for r in rows if r["mode"] == gpu_probe.CUDA_GRAPH]
    assert graphs and all(r["status"].startswith("not capturable") for r in graphs)


def timed_models() -> set[str]:
    """The registered models the probe can feed (a decoder's past and image_embeds it cannot
    make up: those are named in the report's notes instead)."""
    return {
        name
        for name, spec in MODELS.items()
        if not gpu_probe.arch_from_spec(spec).unsupported_inputs
    }


def test_every_registered_architecture_is_in_the_table(tiny_report: str) -> None:
    _, rows = table_rows(tiny_report)
    names = {name for name in MODELS if any(f"`{name}`" in r["architecture"] for r in rows)}
    assert names == timed_models()
    for name in set(MODELS) - timed_models():
        assert f"`{name}`: not timed: the probe does not make up its" in tiny_report
    for family in gpu_probe.FAMILIES:
        assert any(family.label in r["architecture"] for r in rows), family


def test_macs_are_positive(tiny_report: str) -> None:
    _, rows = table_rows(tiny_report)
    for r in rows:
        assert float(r["GMAC/item"].replace(",", "")) > 0, r
    eager = [r for r in rows if r["mode"] == gpu_probe.EAGER and r["status"] == "ok"]
    assert all(float(r["TFLOP/s"]) > 0 for r in eager)


def test_a_spent_budget_stops_early_and_still_writes(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "probe.md"
    assert gpu_probe.main(["--tiny", "--budget-s", "0", "--out", str(out)]) == 0
    header, rows = table_rows(out.read_text(encoding="utf-8"))
    assert header == list(gpu_probe.COLUMNS)
    assert len(rows) == len(timed_models()) * 4  # batch 1, 2, channels_last, CUDA graph
    measurable = [r for r in rows if r["mode"] != gpu_probe.CUDA_GRAPH]  # no graphs on a CPU
    assert {r["status"] for r in measurable} == {gpu_probe.SKIPPED_BUDGET}
    assert all(r["ms/batch (median)"] == "–" for r in rows)
    assert "time budget of 0 s spent" in out.read_text(encoding="utf-8")


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        gpu_probe.main(["--help"])
    assert exit_info.value.code == 0
    assert "--peak-tflops" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("name", "peak"),
    [
        ("NVIDIA H200", 989.0),
        ("NVIDIA H100 80GB HBM3", 989.0),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA L4", 121.0),
        ("NVIDIA L40S", 362.0),
        ("Tesla T4", 65.0),
        ("NVIDIA GeForce RTX 4090", None),
    ],
)
def test_known_peaks(name: str, peak: float | None) -> None:
    found = gpu_probe.known_peak(name)
    assert (found[0] if found else None) == peak


def test_peak_override_and_cpu() -> None:
    assert gpu_probe.peak_for(torch.device("cpu"), 500.0)[0] == 500.0
    assert gpu_probe.peak_for(torch.device("cpu"), None)[0] is None


def parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", sorted(gpu_probe.arch_fallback()))
def test_fallback_builds_what_the_specs_build(name: str) -> None:
    """The torch-only builders (used where export.registry cannot be imported, as on a GPU
    machine without ncnn or tritonclient) match the specs: class, size and input."""
    fallback = gpu_probe.arch_fallback()[name]
    spec = gpu_probe.arch_from_spec(MODELS[name])
    for ours, theirs in ((fallback.build_tiny, spec.build_tiny), (fallback.build, spec.build)):
        a, b = ours(), theirs()
        assert type(a) is type(b)
        assert parameters(a) == parameters(b)
    assert (fallback.channels, fallback.fixed_side, fallback.tiny_fixed_side) == (
        spec.channels,
        spec.fixed_side,
        spec.tiny_fixed_side,
    )
    assert fallback.input_range == pytest.approx(spec.input_range)


def test_full_size_inputs() -> None:
    targets, notes = gpu_probe.targets_for(gpu_probe.load_archs("arch"), False, ())
    sides = {t.arch.name: t.side for t in targets}
    assert sides == {
        "realesrgan_x4plus": 148,
        "realesr_general_x4v3": 148,
        "gfpgan_v1_4": 512,
        "scrfd_10g": 640,
    }
    assert notes == []


def test_without_the_registry_the_arch_builders_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on a GPU machine with PyTorch only: export.registry fails to import (no ncnn or
    tritonclient), and the probe still runs from export/arch, saying so."""
    monkeypatch.setitem(sys.modules, "export.registry", None)  # import raises ImportError
    sources = gpu_probe.load_archs("auto")
    assert set(sources.archs) == {f.spec for f in gpu_probe.FAMILIES}
    assert "not importable" in sources.description
    out = tmp_path / "probe.md"
    argv = ["--tiny", "--models", "realesr_general_x4v3", "--batches", "1", "--out", str(out)]
    assert gpu_probe.main(argv) == 0
    report = out.read_text(encoding="utf-8")
    assert "export/arch directly" in report
    _, rows = table_rows(report)
    assert [r["status"] for r in rows if r["mode"] == gpu_probe.EAGER] == ["ok"]
