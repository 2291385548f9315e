"""GPU probe: PyTorch throughput of every exported architecture, with nothing but PyTorch.

For each architecture (the export specs' `build()`, random init: weights do not matter for
speed) at its serving input (RRDBNet and SRVGG on the gateway's 148² tile window, GFPGAN on a
512² face, SCRFD on a 640² letterbox), in FP16 and FP32 at batch 1, 8 and 32: the median time per
batch from torch.cuda.Event pairs, items/s, GPU memory, and the achieved TFLOP/s from the MACs
that torch.utils.flop_counter counts, as a share of the GPU's dense FP16 tensor-core peak. At
batch 8 (the first dtype) two more rows: the channels_last layout and a CUDA-graph replay.

A global time budget (default 420 s) bounds the run: once it is spent, the remaining cases are
skipped with a note, so the markdown table is always written. `--tiny` runs the tiny variants on
the CPU in seconds and writes the same table, headed as not a GPU run.

    python -m perf.gpu_probe --out perf/reports/gpu_probe.md    # on the GPU machine
    python -m perf.gpu_probe --tiny --out /tmp/probe.md          # anywhere, seconds

Needs PyTorch and the project's own code only: when export.registry cannot be imported (it pulls
in onnx, ncnn, tritonclient, …), the architectures are built from export/arch directly with the
same arguments as the specs (tests/unit/test_gpu_probe.py keeps the two in step).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from perf.machine import cpu_model
from perf.report import table
from triton_core.tiling import DEFAULT_TILE, DEFAULT_TILE_PAD, window_size

if TYPE_CHECKING:
    from export.spec import ModelSpec

# The tile window the gateway sends (tile core plus context on both sides): 148 px.
WINDOW: Final = window_size(DEFAULT_TILE, DEFAULT_TILE_PAD)
# insightface's det_10g input (export/models/scrfd.py INPUT_SIZE; not imported: that module
# needs tritonclient).
SCRFD_SIDE: Final = 640
# A text encoder's "side" is its sequence length: 128 tokens, half its 256-token limit.
TEXT_TOKENS: Final = 128
# Random token ids below 500: valid ids in any vocabulary.
TOKEN_IDS: Final = 500
# The side of a tiny run's input where the spec's size is not fixed.
TINY_SIDE: Final = 32
DEFAULT_BUDGET_S: Final = 420.0  # of the 8 minutes: leaves a minute for start-up and writing
DEFAULT_OUT: Final = Path("build/perf/gpu_probe.md")
DEFAULT_BATCHES: Final = (1, 8, 32)
TINY_BATCHES: Final = (1, 2)
EXTRA_BATCH: Final = 8  # the batch of the channels_last and CUDA-graph rows
DTYPES: Final[dict[str, torch.dtype]] = {
    "fp16": torch.float16,
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
}

# Dense (no sparsity) FP16 tensor-core peaks in TFLOP/s, matched against the device name's
# words in order (so "H100 PCIe" wins over "H100", and "L40S" is not "L4").
DENSE_FP16_PEAK_TFLOPS: Final[tuple[tuple[str, float], ...]] = (
    ("GH200", 989.0),
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),  # SXM; its device name is "NVIDIA H100 80GB HBM3"
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("T4", 65.0),
)

EAGER: Final = "eager"
CHANNELS_LAST: Final = "channels_last"
CUDA_GRAPH: Final = "CUDA graph"
OK: Final = "ok"
SKIPPED_BUDGET: Final = "skipped: time budget spent"
NO_GRAPH_HERE: Final = "not capturable: needs a CUDA device"
COLUMNS: Final = (
    "architecture",
    "input",
    "mode",
    "dtype",
    "batch",
    "GMAC/item",
    "ms/batch (median)",
    "items/s",
    "TFLOP/s",
    "% of FP16 peak",
    "peak MiB",
    "iterations",
    "status",
)


# --- what is probed --------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """One line per architecture: the export spec's name, a label, and the full model's input
    side (None: the spec's fixed input dims, else the gateway's tile window)."""

    spec: str
    label: str
    side: int | None = None


FAMILIES: Final = (
    Family("realesrgan_x4plus", "RRDBNet (Real-ESRGAN x4plus)"),
    Family("realesr_general_x4v3", "SRVGG (realesr-general-x4v3)"),
    Family("gfpgan_v1_4", "GFPGAN v1.4"),
    Family("scrfd_10g", "SCRFD-10G", SCRFD_SIDE),
)


@dataclass(frozen=True)
class Arch:
    """What the probe needs of a spec: builders (patched as exported) and the input."""

    name: str
    build: Callable[[], nn.Module]
    build_tiny: Callable[[], nn.Module]
    channels: int  # of the image input; 0: the model takes vectors only
    fixed_side: int | None  # the input side when the spec fixes it
    tiny_fixed_side: int | None
    input_range: tuple[float, float] = (0.0, 1.0)
    # Sizes of 1-D inputs after the image (e.g. inswapper's 512-d latent): random unit vectors.
    vector_inputs: tuple[int, ...] = ()
    # Integer [B, L] inputs of a text encoder: random token ids, then all-ones masks; L is the
    # target's side.
    token_inputs: int = 0
    # The image crosses as uint8 H×W×C (the model normalises it inside, e.g. CLIP's towers).
    uint8_nhwc: bool = False
    # Inputs the probe cannot make up (a decoder's image_embeds or past keys/values): such a
    # model is listed in the notes, not timed.
    unsupported_inputs: tuple[str, ...] = ()


def _patched(
    build: Callable[[], nn.Module], patch: Callable[[nn.Module], nn.Module] | None
) -> Callable[[], nn.Module]:
    if patch is None:
        return build

    def patched() -> nn.Module:
        return patch(build())

    return patched


def arch_from_spec(spec: ModelSpec) -> Arch:
    """An export.spec.ModelSpec as the probe sees it."""
    tokens = [t for t in spec.inputs if t.dtype in ("TYPE_INT32", "TYPE_INT64")]
    vectors = tuple(t.dims[0] for t in spec.inputs if len(t.dims) == 1 and t not in tokens)
    images = [t for t in spec.inputs if len(t.dims) >= 3]
    nhwc = bool(images) and images[0].dtype == "TYPE_UINT8" and images[0].dims[-1] in (1, 3)
    dims = images[0].dims if images else (0, 0, 0)  # [N,] C, H, W
    if nhwc:
        dims = (dims[-1], dims[-3], dims[-2])
    fixed = dims[-1] if dims[-1] > 0 and dims[-2] == dims[-1] else None
    if tokens:  # a text encoder: its side is the sequence length (the tiny run's: TINY_SIDE)
        fixed = TEXT_TOKENS
    tiny_fixed = None if tokens else fixed
    if tokens and tokens[0].dims[-1] > 0:  # a fixed context (CLIP's 77 ids) at both sizes
        fixed = tiny_fixed = tokens[0].dims[-1]
    if fixed is not None and spec.tiny_sample is not None:
        tiny_fixed = int(spec.tiny_sample().shape[0])
    made = {t.name for t in tokens} | {t.name for t in spec.inputs if len(t.dims) == 1}
    made |= {images[0].name} if images else set()
    unsupported = tuple(t.name for t in spec.inputs if t.name not in made)
    return Arch(
        name=spec.name,
        build=_patched(spec.build, spec.patch),
        build_tiny=_patched(spec.build_tiny, spec.patch),
        channels=int(dims[-3]),
        fixed_side=fixed,
        tiny_fixed_side=tiny_fixed,
        input_range=(float(spec.input_range[0]), float(spec.input_range[1])),
        vector_inputs=vectors,
        token_inputs=len(tokens),
        uint8_nhwc=nhwc,
        unsupported_inputs=unsupported,
    )


def arch_fallback() -> dict[str, Arch]:
    """The same architectures from export/arch alone (torch only), with the specs' arguments."""
    from export.arch.gfpganv1_clean import RestoredFace, gfpgan_v1_4
    from export.arch.rrdbnet import RRDBNet
    from export.arch.scrfd import scrfd_10g, scrfd_tiny
    from export.arch.srvgg import SRVGGNetCompact

    def gfpgan() -> nn.Module:
        return RestoredFace(gfpgan_v1_4())

    def gfpgan_tiny() -> nn.Module:
        return RestoredFace(
            gfpgan_v1_4(
                out_size=512, num_style_feat=8, narrow=1 / 64, channel_multiplier=4, num_mlp=2
            )
        )

    archs = (
        Arch(
            "realesrgan_x4plus",
            lambda: RRDBNet(3, 3, scale=4, num_feat=64, num_block=23, num_grow_ch=32),
            lambda: RRDBNet(3, 3, scale=4, num_feat=8, num_block=1, num_grow_ch=4),
            3,
            None,
            None,
        ),
        Arch(
            "realesr_general_x4v3",
            lambda: SRVGGNetCompact(3, 3, num_feat=64, num_conv=32, upscale=4),
            lambda: SRVGGNetCompact(3, 3, num_feat=8, num_conv=2, upscale=4),
            3,
            None,
            None,
        ),
        Arch("gfpgan_v1_4", gfpgan, gfpgan_tiny, 3, 512, 512, (-1.0, 1.0)),
        Arch("scrfd_10g", scrfd_10g, scrfd_tiny, 3, None, None, (-127.5 / 128, 127.5 / 128)),
    )
    return {a.name: a for a in archs}


@dataclass(frozen=True)
class Sources:
    archs: dict[str, Arch]
    description: str


def load_archs(source: str) -> Sources:
    """`registry`: the export specs; `arch`: export/arch directly; `auto`: the registry when it
    can be imported here, else export/arch."""
    if source in ("auto", "registry"):
        try:
            from export.registry import MODELS
        except ImportError as error:
            if source == "registry":
                raise
            reason = f"export.registry is not importable here ({error})"
        else:
            archs = {name: arch_from_spec(spec) for name, spec in MODELS.items()}
            return Sources(archs, "the export specs (export.registry.MODELS)")
    else:
        reason = "asked for with --source arch"
    return Sources(arch_fallback(), f"export/arch directly with the specs' arguments: {reason}")


@dataclass(frozen=True)
class Target:
    """One architecture at the input it is timed at."""

    family: Family
    arch: Arch
    side: int

    @property
    def title(self) -> str:
        if self.family.label == self.arch.name:
            return f"`{self.arch.name}`"
        return f"{self.family.label} `{self.arch.name}`"


def targets_for(
    sources: Sources, tiny: bool, only: Sequence[str]
) -> tuple[list[Target], list[str]]:
    """The table's families in order, then any registered model that it does not list yet (at
    its fixed size or the tile window), restricted to `only` when given."""
    notes: list[str] = []
    families = list(FAMILIES)
    known = {f.spec for f in families}
    families += [Family(name, name) for name in sources.archs if name not in known]
    targets: list[Target] = []
    for family in families:
        if only and family.spec not in only:
            continue
        arch = sources.archs.get(family.spec)
        if arch is None:
            notes.append(f"`{family.spec}`: not available from {sources.description}")
            continue
        if arch.unsupported_inputs:
            names = ", ".join(arch.unsupported_inputs)
            notes.append(f"`{family.spec}`: not timed: the probe does not make up its {names}")
            continue
        if tiny:
            side = arch.tiny_fixed_side or TINY_SIDE
        else:
            side = arch.fixed_side or family.side or WINDOW
        targets.append(Target(family, arch, side))
    unknown = sorted(set(only) - {f.spec for f in families})
    if unknown:
        notes.append(f"unknown model name(s) {unknown}; known: {sorted(sources.archs)}")
    return targets, notes


# --- the GPU and its peak --------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return "".join(ch if ch.isalnum() else " " for ch in text.upper()).split()


def known_peak(device_name: str) -> tuple[float, str] | None:
    """(dense FP16 TFLOP/s, the table key that matched) for a device name, or None."""
    words = _words(device_name)
    for key, peak in DENSE_FP16_PEAK_TFLOPS:
        wanted = _words(key)
        for start in range(len(words) - len(wanted) + 1):
            if words[start : start + len(wanted)] == wanted:
                return peak, key
    return None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    return f"{device.type}: {cpu_model()}, {os.cpu_count() or 0} cores"


def device_details(device: torch.device) -> str:
    if device.type != "cuda":
        return "no GPU"
    props = torch.cuda.get_device_properties(device)
    return (
        f"{props.total_memory / 2**30:.0f} GiB, compute capability {props.major}.{props.minor}, "
        f"{props.multi_processor_count} SMs"
    )


def peak_for(device: torch.device, override: float | None) -> tuple[float | None, str]:
    if override is not None:
        return override, f"{override:g} TFLOP/s (--peak-tflops)"
    if device.type != "cuda":
        return None, "n/a (not a GPU)"
    name = device_name(device)
    found = known_peak(name)
    if found is None:
        return None, f"n/a (no known dense FP16 peak for {name!r}; pass --peak-tflops)"
    peak, key = found
    return peak, f"{peak:g} TFLOP/s dense FP16 tensor-core peak (table entry {key!r})"


# --- measuring -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """How many warm-up and timed iterations a case gets."""

    warmup: int
    min_iters: int
    max_iters: int
    target_s: float  # timed iterations aim at about this long in all

    def describe(self) -> str:
        if self.min_iters == self.max_iters:
            return f"{self.warmup} warm-up call(s), then {self.min_iters} timed call(s)"
        return (
            f"{self.warmup} warm-up calls, then as many timed calls as fill about "
            f"{self.target_s:g} s ({self.min_iters} to {self.max_iters})"
        )


FULL_TIMING: Final = Timing(warmup=3, min_iters=5, max_iters=100, target_s=1.5)
TINY_TIMING: Final = Timing(warmup=1, min_iters=2, max_iters=2, target_s=0.0)


class BudgetSpent(Exception):
    """The global time budget ran out before this case could be timed."""


@dataclass
class Case:
    target: Target
    mode: str
    dtype: str
    batch: int
    status: str = "not run"
    ms: float | None = None
    iterations: int = 0
    peak_mib: float | None = None

    @property
    def key(self) -> tuple[str, str, bool]:
        """Cases with the same key share one built model."""
        return self.target.arch.name, self.dtype, self.mode == CHANNELS_LAST


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(
    run: Callable[[], object], device: torch.device, timing: Timing, deadline: float
) -> tuple[float, int]:
    """Warm up, then time iterations one by one (CUDA events on a GPU, perf_counter on a CPU):
    (median ms per call, iterations)."""
    estimate = 0.0
    for _ in range(timing.warmup):
        started = time.perf_counter()
        run()
        _sync(device)
        estimate = time.perf_counter() - started
    left = deadline - time.monotonic()
    if left <= 0:
        raise BudgetSpent
    wanted = int(timing.target_s / estimate) if estimate > 0 else timing.max_iters
    iterations = min(max(wanted, timing.min_iters), timing.max_iters)
    if estimate > 0:
        iterations = max(1, min(iterations, int(left / estimate)))
    timed = _cuda_times if device.type == "cuda" else _cpu_times
    return statistics.median(timed(run, device, iterations)), iterations


def _cuda_times(run: Callable[[], object], device: torch.device, iterations: int) -> list[float]:
    """ms per call from an Event pair around each call, the calls queued back to back."""
    event = torch.cuda.Event
    events = [
        (event(enable_timing=True), event(enable_timing=True))  # type: ignore[no-untyped-call]
        for _ in range(iterations)
    ]
    for start, end in events:
        start.record()
        run()
        end.record()
    torch.cuda.synchronize(device)
    return [float(start.elapsed_time(end)) for start, end in events]


def _cpu_times(run: Callable[[], object], device: torch.device, iterations: int) -> list[float]:
    times = []
    for _ in range(iterations):
        started = time.perf_counter()
        run()
        _sync(device)
        times.append((time.perf_counter() - started) * 1000.0)
    return times


def count_macs(model: nn.Module, sample: tuple[torch.Tensor, ...]) -> float:
    """MACs of one forward of `sample` (FLOPs / 2 as FlopCounterMode counts them)."""
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(*sample)
    return float(counter.get_total_flops()) / 2.0


def make_input(
    target: Target, batch: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, ...]:
    """The image (if the model takes one) in its input range, then any vector inputs."""
    arch = target.arch
    inputs = []
    if arch.uint8_nhwc:
        photo = (batch, target.side, target.side, arch.channels)
        inputs.append(torch.randint(0, 256, photo, dtype=torch.uint8, device=device))
    elif arch.channels:
        low, high = arch.input_range
        x = torch.rand(batch, arch.channels, target.side, target.side, device=device)
        inputs.append((x * (high - low) + low).to(dtype))
    for size in arch.vector_inputs:
        vector = torch.nn.functional.normalize(torch.randn(batch, size, device=device), dim=1)
        inputs.append(vector.to(dtype))
    if arch.token_inputs:
        shape = (batch, target.side)
        ids = torch.randint(0, TOKEN_IDS, shape, dtype=torch.int32, device=device)
        inputs += [ids] + [torch.ones_like(ids)] * (arch.token_inputs - 1)
    return tuple(inputs)


def build_model(
    target: Target, tiny: bool, dtype: torch.dtype, device: torch.device, channels_last: bool
) -> nn.Module:
    torch.manual_seed(0)
    model = (target.arch.build_tiny if tiny else target.arch.build)()
    # No parameter needs a gradient; FlopCounterMode's module tracker also trips over outputs
    # that would (GFPGAN's constant input).
    model = model.eval().requires_grad_(False).to(device=device, dtype=dtype)
    if channels_last:
        # Module.to(memory_format=...) refuses GFPGAN's 5-D modulated kernels: convert the 4-D
        # tensors (the convolution kernels) alone.
        for tensor in (*model.parameters(), *model.buffers()):
            if tensor.dim() == 4:
                tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)
    return model


def capture_graph(
    model: nn.Module, x: tuple[torch.Tensor, ...], device: torch.device
) -> Callable[[], None]:
    """Capture one forward in a CUDA graph (warmed up on a side stream, as PyTorch documents)
    and return its replay."""
    side = torch.cuda.Stream(device)  # type: ignore[no-untyped-call]
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side), torch.no_grad():
        for _ in range(3):
            model(*x)
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph):
        model(*x)
    return graph.replay


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(error).__name__}: {first}"[:160]


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Probe:
    device: torch.device
    tiny: bool
    timing: Timing
    deadline: float
    notes: list[str] = field(default_factory=list)
    macs: dict[str, float | None] = field(default_factory=dict)
    _model_key: tuple[str, str, bool] | None = None
    _model: nn.Module | None = None

    def model_for(self, case: Case) -> nn.Module:
        if self._model is None or self._model_key != case.key:
            self.release()
            self._model = build_model(
                case.target,
                self.tiny,
                DTYPES[case.dtype],
                self.device,
                channels_last=case.mode == CHANNELS_LAST,
            )
            self._model_key = case.key
        return self._model

    def release(self) -> None:
        self._model = None
        self._model_key = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def count(self, case: Case, model: nn.Module) -> None:
        name = case.target.arch.name
        if name in self.macs:
            return
        try:
            sample = make_input(case.target, 1, DTYPES[case.dtype], self.device)
            self.macs[name] = count_macs(model, sample)
        except Exception as error:  # a model FlopCounterMode cannot follow still gets timed
            self.macs[name] = None
            self.notes.append(f"`{name}`: MACs not counted ({_reason(error)})")

    def run(self, case: Case) -> None:
        if case.mode == CUDA_GRAPH and self.device.type != "cuda":
            case.status = NO_GRAPH_HERE  # one note for all of them, in the report
            return
        if time.monotonic() >= self.deadline:
            case.status = SKIPPED_BUDGET
            return
        try:
            self._measure(case)
        except BudgetSpent:
            case.status = SKIPPED_BUDGET
        except torch.cuda.OutOfMemoryError:
            case.status = "OOM"
            self.notes.append(f"{describe(case)}: out of GPU memory, skipped")
        except Exception as error:
            case.status = (
                f"not capturable: {_reason(error)}"
                if case.mode == CUDA_GRAPH
                else f"failed: {_reason(error)}"
            )
            self.notes.append(f"{describe(case)}: {case.status}")
        finally:
            with contextlib.suppress(Exception):
                _sync(self.device)
            if case.status == "OOM":  # the exception and its frames are gone by now
                self.release()

    def _measure(self, case: Case) -> None:
        model = self.model_for(case)
        self.count(case, model)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        x = make_input(case.target, case.batch, DTYPES[case.dtype], self.device)
        if case.mode == CHANNELS_LAST:  # images only: a latent has no channels to reorder
            x = tuple(
                t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t for t in x
            )

        def forward() -> None:
            model(*x)

        run: Callable[[], object] = forward
        if case.mode == CUDA_GRAPH:
            run = capture_graph(model, x, self.device)
        with torch.inference_mode():
            case.ms, case.iterations = time_calls(run, self.device, self.timing, self.deadline)
        if self.device.type == "cuda":
            case.peak_mib = torch.cuda.max_memory_allocated(self.device) / 2**20
        case.status = OK


def describe(case: Case) -> str:
    return f"`{case.target.arch.name}` {case.mode} {case.dtype} batch {case.batch}"


def plan(targets: Sequence[Target], dtypes: Sequence[str], batches: Sequence[int]) -> list[Case]:
    """Eager cases, dtype by dtype, each architecture's channels_last row after its eager ones;
    the CUDA-graph rows last, so that a capture gone wrong cannot spoil the other cases."""
    extra_dtype = "fp16" if "fp16" in dtypes else dtypes[0]
    extra_batch = EXTRA_BATCH if EXTRA_BATCH in batches else max(batches)
    cases: list[Case] = []
    for dtype in dtypes:
        for target in targets:
            cases += [Case(target, EAGER, dtype, batch) for batch in batches]
            if dtype == extra_dtype:
                cases.append(Case(target, CHANNELS_LAST, dtype, extra_batch))
    cases += [Case(target, CUDA_GRAPH, extra_dtype, extra_batch) for target in targets]
    return cases


@contextlib.contextmanager
def progress(total: int) -> Iterator[Callable[[str], None]]:
    """A tqdm bar over the cases when tqdm is installed; `step(description)` advances it."""
    try:
        from tqdm import tqdm
    except ImportError:
        yield lambda _description: None
        return
    bar = tqdm(total=total, unit="case", file=sys.stderr, dynamic_ncols=True)

    def step(description: str) -> None:
        bar.set_description_str(description)
        bar.update(1)

    try:
        yield step
    finally:
        bar.close()


# --- the report ------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:,.{digits}f}"


def _gmac(macs: float | None) -> str:
    if macs is None:
        return "–"
    gmac = macs / 1e9
    return f"{gmac:,.1f}" if gmac >= 10 else f"{gmac:.3g}"


def describe_input(target: Target) -> str:
    """C×H×W of the image, the size of each vector input, the token count; joined by +."""
    side = target.side
    parts = [f"{target.arch.channels}×{side}×{side}"] if target.arch.channels else []
    parts += [str(size) for size in target.arch.vector_inputs]
    return " + ".join(parts + ([f"{side} tokens"] if target.arch.token_inputs else []))


def row(case: Case, macs: float | None, peak: float | None) -> list[str]:
    items_s = tflops = share = None
    if case.ms is not None and case.ms > 0:
        items_s = case.batch * 1000.0 / case.ms
        if macs is not None:
            tflops = 2.0 * macs * items_s / 1e12
            share = 100.0 * tflops / peak if peak else None
    return [
        case.target.title,
        describe_input(case.target),
        case.mode,
        case.dtype,
        str(case.batch),
        _gmac(macs),
        _num(case.ms, 2),
        _num(items_s, 1),
        _num(tflops, 1) if tflops is None or tflops >= 0.1 else f"{tflops:.2g}",
        _num(share, 1) if share is not None else "n/a" if peak is None else "–",
        _num(case.peak_mib, 0),
        str(case.iterations) if case.iterations else "–",
        case.status,
    ]


@dataclass(frozen=True)
class Setup:
    device: torch.device
    tiny: bool
    peak: float | None
    peak_text: str
    budget_s: float
    sources: Sources
    timing: Timing
    command: str
    started: float  # time.monotonic() at the start of the run


def _tf32_settings() -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cudnn = torch.backends.cudnn.allow_tf32
        matmul = torch.backends.cuda.matmul.allow_tf32
    return f"cuDNN TF32 allowed: {cudnn}, matmul TF32 allowed: {matmul} (PyTorch's defaults)"


def _versions(device: torch.device) -> str:
    text = f"torch {torch.__version__}, Python {platform.python_version()}"
    if device.type == "cuda":
        cudnn = torch.backends.cudnn.version()  # type: ignore[no-untyped-call]
        text += f", CUDA {torch.version.cuda}, cuDNN {cudnn}"
    return text


def header(setup: Setup, elapsed_s: float, cases: Sequence[Case]) -> list[str]:
    device = setup.device
    done = sum(1 for c in cases if c.status == OK)
    skipped = sum(1 for c in cases if c.status == SKIPPED_BUDGET)
    kind = "tiny variants, " if setup.tiny else ""
    lines = [f"# GPU probe: PyTorch throughput of the exported architectures ({kind}{device})", ""]
    if device.type != "cuda":
        lines += [
            f"**NOT a GPU run**: device `{device}`"
            + (" with the tiny variants" if setup.tiny else "")
            + "; these numbers say nothing about GPU speed, they only show that every case runs.",
            "",
        ]
    lines += [
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}; command: `{setup.command}`",
        f"- device: {device_name(device)} ({device_details(device)})",
        f"- host: {cpu_model()}, {os.cpu_count() or 0} cores",
        f"- versions: {_versions(device)}",
        f"- peak used: {setup.peak_text}; the % column divides every row, FP32 ones too, by this"
        " FP16 peak (FP32 convolutions run as TF32 where allowed, whose dense peak is half the"
        " FP16 one on Ampere and Hopper)",
        f"- precision: {_tf32_settings()}; torch.backends.cudnn.benchmark = True on CUDA",
        f"- architectures: {setup.sources.description}; random init (weights do not change the"
        " speed); inference_mode",
        f"- inputs: uniform random in each model's input range, NCHW contiguous, except the"
        f" `{CHANNELS_LAST}` rows (model and input in torch.channels_last) and the"
        f" `{CUDA_GRAPH}` rows (one forward captured with torch.cuda.graph, then replayed)",
        "- MACs: torch.utils.flop_counter.FlopCounterMode over one batch-1 forward, MACs ="
        " FLOPs / 2. It counts convolutions and matrix products only (not elementwise ops,"
        " normalisation, resizing or pooling), so TFLOP/s = 2 × MACs × items/s is tensor-core"
        " work per second",
        f"- timing: {setup.timing.describe()}, each between"
        + (" a torch.cuda.Event pair" if device.type == "cuda" else " two perf_counter calls")
        + "; the table shows the median. Peak MiB: torch.cuda.max_memory_allocated over the"
        " case (weights, and a CUDA graph's pool, included)",
        f"- budget: {setup.budget_s:g} s for the whole run, {elapsed_s:.0f} s used; {done} of"
        f" {len(cases)} cases measured, {skipped} skipped for the budget",
        "",
    ]
    return lines


def render(
    setup: Setup, cases: Sequence[Case], macs: dict[str, float | None], notes: Sequence[str]
) -> tuple[str, list[str]]:
    """(the whole markdown, the table's lines)."""
    rows = [row(case, macs.get(case.target.arch.name), setup.peak) for case in cases]
    lines = table(list(COLUMNS), rows)
    elapsed = time.monotonic() - setup.started
    markdown = [*header(setup, elapsed, cases), "## Results", "", *lines, ""]
    all_notes = list(notes)
    skipped = [describe(c) for c in cases if c.status == SKIPPED_BUDGET]
    if skipped:
        all_notes.append(
            f"time budget of {setup.budget_s:g} s spent: {len(skipped)} case(s) skipped, from "
            f"{skipped[0]} on"
        )
    if any(c.status == NO_GRAPH_HERE for c in cases):
        all_notes.append(f"`{CUDA_GRAPH}` rows need a CUDA device: none captured on {setup.device}")
    markdown += ["## Notes", ""] + [f"- {n}" for n in all_notes or ["none"]] + [""]
    return "\n".join(markdown), lines


# --- command line ----------------------------------------------------------------------------


def _positive_ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers like 1,8,32; got {text!r}")
    return values


def _dtypes(text: str) -> tuple[str, ...]:
    values = tuple(part.strip() for part in text.split(",") if part.strip())
    if not values or any(v not in DTYPES for v in values):
        raise argparse.ArgumentTypeError(f"expected some of {','.join(DTYPES)}; got {text!r}")
    return values


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m perf.gpu_probe",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="markdown report (default %(default)s)"
    )
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="tiny variants, small inputs, batch 1 and 2, fp32, 2 iterations, on the CPU unless "
        "--device says otherwise: a check that every case runs, not a measurement",
    )
    parser.add_argument(
        "--device", help="torch device (default: cuda; with --tiny: cpu); forces e.g. cpu"
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=DEFAULT_BUDGET_S,
        help="time budget for the whole run; cases left when it is spent are skipped and the "
        "table is still written (default %(default)s)",
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        help="dense FP16 peak to divide by, for a GPU the built-in table does not know",
    )
    parser.add_argument("--batches", type=_positive_ints, help="default 1,8,32 (with --tiny: 1,2)")
    parser.add_argument(
        "--dtypes", type=_dtypes, help=f"some of {','.join(DTYPES)}; default fp16,fp32 (tiny: fp32)"
    )
    parser.add_argument(
        "--models", type=_names, default=(), help="spec names to probe (default: all)"
    )
    parser.add_argument(
        "--source",
        choices=("auto", "registry", "arch"),
        default="auto",
        help="where the architectures come from: the export registry, export/arch directly, or "
        "the registry when importable (default)",
    )
    return parser


def pick_device(requested: str | None, tiny: bool) -> torch.device:
    if requested:
        return torch.device(requested)
    if tiny:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise SystemExit(
            "no CUDA device: run with --tiny for the CPU check, or --device cpu to force a "
            "full-size CPU run (slow; the budget still bounds it)"
        )
    return torch.device("cuda")


def _command(argv: Sequence[str]) -> str:
    return " ".join(["python -m perf.gpu_probe", *argv])


def main(argv: Sequence[str] | None = None) -> int:
    started = time.monotonic()
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(args_list)
    device = pick_device(args.device, args.tiny)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    peak, peak_text = peak_for(device, args.peak_tflops)
    sources = load_archs(args.source)
    targets, notes = targets_for(sources, args.tiny, args.models)
    batches = args.batches or (TINY_BATCHES if args.tiny else DEFAULT_BATCHES)
    dtypes = args.dtypes or (("fp32",) if args.tiny else ("fp16", "fp32"))
    timing = TINY_TIMING if args.tiny else FULL_TIMING
    setup = Setup(
        device,
        args.tiny,
        peak,
        peak_text,
        args.budget_s,
        sources,
        timing,
        _command(args_list),
        started,
    )
    probe = Probe(device, args.tiny, timing, deadline=started + args.budget_s, notes=notes)
    cases = plan(targets, dtypes, batches)
    with progress(len(cases)) as step:
        for case in cases:
            probe.run(case)
            step(describe(case).replace("`", ""))
    probe.release()
    markdown, lines = render(setup, cases, probe.macs, probe.notes)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown, encoding="utf-8")
    sys.stdout.write("\n".join(lines) + f"\n\nreport: {args.out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
