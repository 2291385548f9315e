"""What `python -m export.trt_build` asks trtexec for, as pure functions: the command lines
that build a plan with one optimisation profile and run it once on a recorded sample, and the
reading of what that run exports and logs.

Nothing here needs TensorRT or a GPU, so `--dry-run` and the tests run anywhere; and nothing here
imports more than the standard library and numpy (Python 3.10 too), because the build runs in
NVIDIA's stock tritonserver image (tests/unit/test_trt_plans.py checks the imports)."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from export.errors import TensorRTError

Array = npt.NDArray[Any]

# Where NVIDIA's tritonserver and TensorRT images install trtexec.
NGC_TRTEXEC = Path("/usr/src/tensorrt/bin/trtexec")
# One timing cache for every model of a run, kept between runs: a layer already timed on this
# GPU with this TensorRT (the same convolution shape in another model, or an unchanged model
# rebuilt) is not timed again.
TIMING_CACHE_FILE = "timing.cache"

Shape = tuple[int, ...]


@dataclass(frozen=True)
class InputProfile:
    """One input's shapes in the optimisation profile (batch axis first)."""

    name: str
    min: Shape
    opt: Shape
    max: Shape

    def as_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @classmethod
    def from_dict(cls, name: str, shapes: Mapping[str, Sequence[int]]) -> InputProfile:
        """The inverse of `as_dict`."""
        return cls(name, *(tuple(int(n) for n in shapes[key]) for key in ("min", "opt", "max")))

    def admits(self, shape: Shape) -> bool:
        """Whether a tensor of `shape` lies inside the profile (a plan runs only those)."""
        return len(shape) == len(self.min) and all(
            low <= size <= high for low, size, high in zip(self.min, shape, self.max, strict=True)
        )


def shape_text(shape: Sequence[int]) -> str:
    """trtexec's way of writing a shape: 8x3x148x148."""
    return "x".join(str(size) for size in shape)


def _tensor_name(name: str) -> str:
    # trtexec splits its specs at ',' and ':'; a name holding either goes in single quotes.
    return f"'{name}'" if re.search(r"[,:']", name) else name


def shapes_spec(shapes: Sequence[tuple[str, Shape]]) -> str:
    return ",".join(f"{_tensor_name(name)}:{shape_text(shape)}" for name, shape in shapes)


def build_command(
    trtexec: Path,
    onnx: Path,
    plan: Path,
    profiles: Sequence[InputProfile],
    timing_cache: Path,
) -> list[str]:
    """trtexec building an FP16 plan of `onnx` with one optimisation profile, the timing cache
    read and updated, and no timing run afterwards."""
    return [
        str(trtexec),
        f"--onnx={onnx}",
        "--minShapes=" + shapes_spec([(p.name, p.min) for p in profiles]),
        "--optShapes=" + shapes_spec([(p.name, p.opt) for p in profiles]),
        "--maxShapes=" + shapes_spec([(p.name, p.max) for p in profiles]),
        "--fp16",
        f"--timingCacheFile={timing_cache}",
        f"--saveEngine={plan}",
        "--skipInference",
    ]


def run_command(
    trtexec: Path,
    plan: Path,
    inputs: Sequence[tuple[str, Shape, Path]],
    exported: Path,
) -> list[str]:
    """trtexec running `plan` once on raw input files (name, shape, file) and writing every
    output, values included, to `exported` (JSON)."""
    return [
        str(trtexec),
        f"--loadEngine={plan}",
        "--shapes=" + shapes_spec([(name, shape) for name, shape, _ in inputs]),
        "--loadInputs=" + ",".join(f"{_tensor_name(name)}:{path}" for name, _, path in inputs),
        f"--exportOutput={exported}",
        "--iterations=1",
        "--warmUp=0",
        "--duration=0",
    ]


def command_text(command: Sequence[str]) -> str:
    return shlex.join(command)


# C++ streams print non-finite floats as nan / -nan / inf / -inf, which JSON lacks.
_NON_FINITE = re.compile(r"(?<![\w\".])(-?)(nan|inf)(?![\w\"])", re.IGNORECASE)


def _json_number(match: re.Match[str]) -> str:
    if match.group(2).lower() == "nan":
        return "NaN"
    return f"{match.group(1)}Infinity"


def parse_exported_outputs(text: str) -> dict[str, Array]:
    """trtexec's --exportOutput file: a JSON list of {"name", "dimensions": "AxBxC", "values"}
    (printed with the stream's 6 significant digits), each output as a float64 array."""
    entries = json.loads(_NON_FINITE.sub(_json_number, text))
    outputs: dict[str, Array] = {}
    for entry in entries:
        name = str(entry["name"])
        dims = tuple(int(size) for size in re.findall(r"\d+", str(entry["dimensions"])))
        values = np.asarray(entry["values"], dtype=np.float64)
        if values.size != int(np.prod(dims)):
            raise TensorRTError(
                f"trtexec exported {values.size} values for output '{name}' of dimensions "
                f"{entry['dimensions']}"
            )
        outputs[name] = values.reshape(dims)
    return outputs


def tensorrt_version_from_log(text: str) -> str | None:
    """The TensorRT version trtexec reports ("TensorRT version: 10.3.0", or the banner's
    "[TensorRT v100300]")."""
    stated = re.search(r"TensorRT version: (\d+\.\d+\.\d+)", text)
    if stated:
        return stated.group(1)
    banner = re.search(r"\[TensorRT v(\d+)\]", text)
    return version_from_number(int(banner.group(1))) if banner else None


def version_from_number(number: int) -> str:
    """NV_TENSORRT_VERSION as a version: major·10000 + minor·100 + patch from TensorRT 10 on,
    major·1000 + minor·100 + patch before (8601 is 8.6.1, 100300 is 10.3.0)."""
    if number >= 10_000:
        return f"{number // 10_000}.{number // 100 % 100}.{number % 100}"
    return f"{number // 1000}.{number // 100 % 10}.{number % 100}"


def gpu_from_log(text: str) -> str | None:
    selected = re.search(r"Selected Device: (.+)", text)
    return selected.group(1).strip() if selected else None
