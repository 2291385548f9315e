"""The TF.js original as the reference a converted graph is checked against: the model.json run
by TF.js 4.22.0 itself under Node.js (`tfjs_reference/run_graph.mjs`), installed from the
committed lockfile into the export's cache folder.

The backend is tfjs-backend-wasm (XNNPACK kernels, its .wasm binaries inside the npm
package): the pure-JS cpu backend gives the same numbers (measured within 1e-5 on NanoDet)
but takes 16 s instead of 1 s for a 416² detector on this machine.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.errors import ExportError
from export.npm import install_locked
from export.spec import Array

PROJECT = Path(__file__).resolve().parent / "tfjs_reference"
SCRIPT = PROJECT / "run_graph.mjs"
TFJS_VERSION = "4.22.0"  # pinned in tfjs_reference/package.json and its lockfile
BACKEND = "wasm"
RUN_TIMEOUT_S = 300
DTYPES = {"float32": np.float32, "int32": np.int32}


@dataclass(frozen=True)
class TfjsRun:
    outputs: dict[str, Array]  # by TF tensor name ("node:index")
    versions: dict[str, str]  # node, @tensorflow/tfjs-core, backend
    milliseconds: float


def install_runtime(cache: Path) -> Path:
    """node_modules with the pinned TF.js packages, in `cache`."""
    return install_locked(PROJECT, cache / f"tfjs-{TFJS_VERSION}")


def run_original(
    model_json: Path, feeds: Mapping[str, Array], outputs: list[str], cache: Path
) -> TfjsRun:
    """`outputs` of the TF.js graph at `model_json` for `feeds` (by Placeholder name)."""
    node = shutil.which("node")
    if node is None:
        raise ExportError("node is not on PATH: the TF.js reference check needs Node.js 20")
    modules = install_runtime(cache)
    with tempfile.TemporaryDirectory(prefix="facet-tfjs-") as tmp:
        folder = Path(tmp)
        inputs = []
        for index, (name, value) in enumerate(feeds.items()):
            array = np.ascontiguousarray(value)
            dtype = next((k for k, v in DTYPES.items() if array.dtype == v), None)
            if dtype is None:
                raise ExportError(f"TF.js input {name}: dtype {array.dtype} is not supported")
            file = f"input_{index}.bin"
            array.astype(array.dtype.newbyteorder("<")).tofile(folder / file)
            inputs.append({"name": name, "dtype": dtype, "shape": list(array.shape), "file": file})
        request = {"backend": BACKEND, "inputs": inputs, "outputs": outputs}
        (folder / "request.json").write_text(json.dumps(request))
        # Absolute paths: Node resolves packages from `modules` with createRequire, which takes
        # no relative path.
        paths = (SCRIPT, modules, model_json, folder)
        command = [node, *(str(Path(p).resolve()) for p in paths)]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise ExportError(
                f"TF.js run of {model_json.name} took over {RUN_TIMEOUT_S} s"
            ) from exc
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-8:])
            raise ExportError(f"TF.js run of {model_json.name} failed: {tail}")
        return _read_response(folder)


def _read_response(folder: Path) -> TfjsRun:
    response = json.loads((folder / "response.json").read_text())
    outputs = {}
    for item in response["outputs"]:
        dtype = np.dtype(DTYPES[item["dtype"]]).newbyteorder("<")
        values = np.fromfile(folder / item["file"], dtype=dtype)
        outputs[item["name"]] = values.reshape(item["shape"]).astype(DTYPES[item["dtype"]])
    versions = {
        "node": str(response["node"]),
        "@tensorflow/tfjs-core": str(response["tfjs"]),
        "tfjs_backend": str(response["backend"]),
    }
    return TfjsRun(outputs, versions, float(response["milliseconds"]))
