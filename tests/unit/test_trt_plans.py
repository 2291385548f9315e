"""The TensorRT plans in two halves: `python -m export` writes each profiled model's job
(export/trt_plans.py: profiles tuned for what the gateway sends, configs that agree with them,
the sample and ONNX Runtime's outputs on it), and `python3 -m export.trt_build` builds the plan
from it with nothing but the standard library, numpy and trtexec (the trtexec commands, FP16
parity recorded in the manifest, plans that fail deleted).

trtexec is a stand-in here (a script that "builds" a file naming the ONNX model and "runs" it on
ONNX Runtime, writing its outputs as trtexec's --exportOutput does); the last test builds a real
plan and is skipped unless trtexec and a CUDA GPU are present."""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib
import json
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from export import cli, manifest, pipeline, trt_build, trt_job, trt_plans
from export.errors import PlanConfigError
from export.manifest import Manifest, load_manifest, read_manifest, write_manifest
from export.pipeline import ExportOptions, export_any, sample_feeds
from export.registry import MODELS
from export.triton_config import GPU_TRT_PLAN, config_files, parse_config, write_configs
from export.trt_commands import parse_exported_outputs, shape_text, version_from_number
from export.trt_job import JOB_FILE, SAMPLE_FILE, read_job, record_in_manifest
from export.trt_parity import (
    FAMILY_OF,
    SUPER_RESOLUTION,
    PlanRecord,
    compare_plan,
    is_current,
)
from export.trt_plans import check_config, input_profiles
from export.validate import CheckResult
from export.weights import SourceFile
from gateway.context import blip_session, clip_session
from gateway.faces import swap_sessions
from gateway.faces.align import ARCFACE_SIZE, FFHQ_SIZE
from gateway.faces.embed_align import DLIB_CHIP_SIZE
from gateway.faces.triton_sessions import RESTORE_ENSEMBLE_PREFIX
from gateway.recognition.recognizers import DLIB
from gateway.settings import Settings
from serving.bls import clip_tokenizer, text_tokenizer
from tests.imports import imported_packages
from triton_core.catalog import facts_from_config
from triton_core.tiling import window_size

REPOSITORY = Path(__file__).resolve().parents[2] / "model_repository"
PROFILED = sorted(name for name, spec in MODELS.items() if spec.tensorrt is not None)
TINY_MODEL = "realesr_general_x4v3"


def committed(name: str) -> mc.ModelConfig:
    return parse_config(REPOSITORY / name / "config.pbtxt")


def batch_limit(name: str) -> int:
    """A model's batch limit as the gateway learns it: from its (committed) config."""
    return facts_from_config(committed(name)).max_batch_size


def parameter(name: str, key: str) -> int:
    return int(committed(name).parameters[key].string_value)


# What the gateway really sends each model, worked out from the gateway's own settings and
# constants and the committed configs it reads: never from the specs' profiles.
def _upscale(model: str) -> Callable[[Settings], tuple[int, ...]]:
    def sent(settings: Settings) -> tuple[int, ...]:
        window = window_size(settings.tile_size, settings.tile_pad)
        return (batch_limit(f"upscale_{model}"), 3, window, window)

    return sent


GATEWAY_SENDS: dict[str, Callable[[Settings], tuple[int, ...]]] = {
    # Tiles of every image, in chunks of the upscale ensemble's limit.
    "realesrgan_x4plus": _upscale("realesrgan_x4plus"),
    "realesr_general_x4v3": _upscale("realesr_general_x4v3"),
    # Faces of a photo, in chunks of the ensemble's limit.
    "gfpgan_v1_4": lambda s: (
        batch_limit(f"{RESTORE_ENSEMBLE_PREFIX}gfpgan_v1_4"),
        3,
        FFHQ_SIZE,
        FFHQ_SIZE,
    ),
    "dlib_resnet_v1": lambda s: (batch_limit(DLIB.model), 3, DLIB_CHIP_SIZE, DLIB_CHIP_SIZE),
    "arcface_w600k_r50": lambda s: (
        batch_limit(swap_sessions.EMBEDDER),
        3,
        ARCFACE_SIZE,
        ARCFACE_SIZE,
    ),
    # Photos indexed context_batch_images at a time: one CLIP call, one caption_blip call (at
    # most its max_images, sent on to blip_vision at most vision_max_batch at a time) and one
    # embed_text call of one text per photo, padded to its shortest length bucket.
    "clip_vit_b32_visual": lambda s: (
        min(s.context_batch_images, batch_limit(clip_session.IMAGE_MODEL)),
        clip_session.IMAGE_SIZE,
        clip_session.IMAGE_SIZE,
        3,
    ),
    "blip_vision": lambda s: (
        min(
            s.context_batch_images,
            parameter(blip_session.MODEL, blip_session.MAX_IMAGES_PARAMETER),
            parameter(blip_session.MODEL, "vision_max_batch"),
        ),
        blip_session.IMAGE_SIZE,
        blip_session.IMAGE_SIZE,
        3,
    ),
    "minilm_l6_v2": lambda s: (
        min(s.context_batch_images, parameter("embed_text", "encoder_max_batch")),
        text_tokenizer.MIN_PADDED_LENGTH,
    ),
    # One text per search query; Triton merges concurrent ones up to its largest preferred
    # batch size before the encoder runs.
    "clip_vit_b32_textual": lambda s: (
        max(committed(clip_session.TEXT_ENCODER).dynamic_batching.preferred_batch_size),
        clip_tokenizer.CONTEXT_LENGTH,
    ),
}


def test_every_model_with_a_tensorrt_profile_is_checked_against_what_the_gateway_sends():
    assert sorted(GATEWAY_SENDS) == PROFILED


@pytest.mark.parametrize("name", PROFILED)
def test_the_profile_optimum_is_the_shape_the_gateway_sends(name: str) -> None:
    profile = MODELS[name].tensorrt
    assert profile is not None
    assert profile.opt_shape == GATEWAY_SENDS[name](Settings())
    assert profile.opt_source, "the profile says where its optimum comes from"


@pytest.mark.parametrize("name", PROFILED)
def test_every_committed_gpu_trt_plan_config_agrees_with_its_profile(name: str) -> None:
    path = REPOSITORY / name / "configs" / f"{GPU_TRT_PLAN}.pbtxt"
    check_config(name, input_profiles(MODELS[name]), parse_config(path), path)


def test_every_model_with_a_profile_has_a_stated_fp16_tolerance():
    assert sorted(FAMILY_OF) == PROFILED
    assert all(
        0 < tolerance.max_rel_error < 0.05 and tolerance.reason for tolerance in FAMILY_OF.values()
    )


def run_build(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = trt_build.main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _flag_values(build: list[str], spec_name: str) -> None:
    spec, profile = MODELS[spec_name], MODELS[spec_name].tensorrt
    assert profile is not None
    for flag, shape in (
        ("--minShapes", profile.min_shape),
        ("--optShapes", profile.opt_shape),
        ("--maxShapes", profile.max_shape),
    ):
        expected = ",".join(f"{t.name}:{shape_text(shape)}" for t in spec.inputs)
        assert f"{flag}={expected}" in build, (spec_name, flag)
    assert "--fp16" in build


@pytest.mark.parametrize("name", PROFILED)
def test_the_job_of_every_profiled_model_builds_with_its_min_opt_and_max_shapes_in_fp16(
    name: str, tmp_path: Path
) -> None:
    spec = MODELS[name]
    config = parse_config(REPOSITORY / name / "configs" / f"{GPU_TRT_PLAN}.pbtxt")
    feeds = sample_feeds(spec, False, trt_plans.SAMPLE_BATCH)
    job = trt_plans.job_for(spec, config, feeds, "00" * 32)
    # The job survives its JSON: what the build reads is what the export wrote.
    job = trt_job.PlanJob.from_dict(json.loads(json.dumps(job.as_dict())))
    located = trt_build.Located(job, REPOSITORY / name, tmp_path / name)
    cache = tmp_path / "timing.cache"
    build, run = trt_build.commands(located, Path("trtexec"), cache)
    _flag_values(build, name)
    assert f"--timingCacheFile={cache}" in build
    assert f"--saveEngine={REPOSITORY / name / '1' / 'model.plan.new'}" in build
    assert f"--loadEngine={REPOSITORY / name / '1' / 'model.plan.new'}" in run
    assert any(a.startswith("--exportOutput=") for a in run)
    assert job.tolerance == FAMILY_OF[name]
    assert job.outputs == tuple(t.name for t in spec.outputs)
    assert job.optimum_source == spec.tensorrt.opt_source  # type: ignore[union-attr]


def test_help_explains_the_dry_run_and_where_plans_are_built(capsys):
    with pytest.raises(SystemExit) as exited:
        trt_build.main(["--help"])
    out = capsys.readouterr().out
    assert exited.value.code == 0
    assert "--dry-run" in out and "tritonserver image" in out and "--timing-cache" in out


# ---- the build's imports: the stock tritonserver image has Python 3.10 and numpy, no more ----

BUILD_MODULE = "export.trt_build"
# Names the standard library gained in Python 3.11, which the image's 3.10 lacks.
PYTHON_311_NAMES = {
    "datetime": {"UTC"},
    "typing": {"Self", "LiteralString", "Never", "assert_never", "reveal_type", "Required"},
    "enum": {"StrEnum", "ReprEnum", "verify", "member", "nonmember"},
    "asyncio": {"TaskGroup", "timeout"},
}
PYTHON_311_MODULES = {"tomllib", "wsgiref.types"}


def _project_modules(name: str) -> list[ModuleType]:
    """`name` and every project module it imports, however deep."""
    seen: dict[str, ModuleType] = {}
    todo = [name]
    while todo:
        module = importlib.import_module(todo.pop())
        if module.__name__ in seen:
            continue
        seen[module.__name__] = module
        tree = ast.parse(Path(str(module.__file__)).read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            todo += [n for n in names if n.split(".")[0] == "export" and n != "export"]
    return list(seen.values())


def test_the_build_and_every_project_module_it_imports_need_only_the_standard_library_and_numpy():
    modules = _project_modules(BUILD_MODULE)
    assert {m.__name__ for m in modules} >= {
        "export.trt_build",
        "export.trt_job",
        "export.trt_commands",
        "export.trt_parity",
        "export.errors",
    }
    for module in modules:
        outside = imported_packages(module) - set(sys.stdlib_module_names) - {"numpy", "export"}
        assert not outside, f"{module.__name__} imports {sorted(outside)}"
    package = importlib.import_module("export")
    assert not Path(str(package.__file__)).read_text().strip(), "export/__init__.py stays empty"


def test_the_build_and_its_project_modules_are_python_310_code():
    for module in _project_modules(BUILD_MODULE):
        source = Path(str(module.__file__)).read_text()
        tree = ast.parse(source, feature_version=(3, 10))  # no 3.11+ syntax (except*, PEP 695)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                newer = {a.name for a in node.names} & PYTHON_311_MODULES
            elif isinstance(node, ast.ImportFrom) and node.module:
                later = PYTHON_311_NAMES.get(node.module, set())
                newer = {a.name for a in node.names} & later
                newer |= {node.module} & PYTHON_311_MODULES
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                later = PYTHON_311_NAMES.get(node.value.id, set())
                newer = {node.attr} & later
            else:
                continue
            assert not newer, f"{module.__name__} uses {sorted(newer)}, new in Python 3.11"


def test_the_manifest_file_the_build_rewrites_is_the_one_the_export_writes():
    assert trt_job.MANIFEST_NAME == manifest.MANIFEST_NAME
    assert trt_job.VERSION == pipeline.VERSION


def test_the_prepare_step_refuses_a_config_whose_batch_limit_exceeds_the_profile(tmp_path, capsys):
    repository = _repository_with_committed_configs(tmp_path, "realesrgan_x4plus")
    config = repository / "realesrgan_x4plus" / "configs" / f"{GPU_TRT_PLAN}.pbtxt"
    _edit_config(config, lambda c: setattr(c, "max_batch_size", 16))
    argv = ["prepare", "--repository", str(repository), "--models", "realesrgan_x4plus"]
    status = trt_plans.main(argv)
    err = capsys.readouterr().err
    assert status == 1
    assert "realesrgan_x4plus" in err and str(config) in err
    assert "max_batch_size 16 exceeds the profile's largest batch 8" in err
    assert not (repository / "realesrgan_x4plus" / "1" / JOB_FILE).exists()


def _repository_with_committed_configs(root: Path, name: str) -> Path:
    repository = root / "repo"
    shutil.copytree(REPOSITORY / name / "configs", repository / name / "configs")
    return repository


def _edit_config(path: Path, edit: Callable[[mc.ModelConfig], None]) -> None:
    config = parse_config(path)
    edit(config)
    path.write_text(text_format.MessageToString(config))


def test_a_config_that_fixes_an_axis_the_profile_varies_is_refused_naming_the_axis(tmp_path):
    repository = _repository_with_committed_configs(tmp_path, "realesrgan_x4plus")
    path = repository / "realesrgan_x4plus" / "configs" / f"{GPU_TRT_PLAN}.pbtxt"

    def fix_size(config: mc.ModelConfig) -> None:
        del config.input[0].dims[:]
        config.input[0].dims.extend([3, 64, 64])

    _edit_config(path, fix_size)
    profiles = input_profiles(MODELS["realesrgan_x4plus"])
    with pytest.raises(
        PlanConfigError, match=r"axis 2: the config fixes it at 64, the profile spans 64\.\.296"
    ):
        check_config("realesrgan_x4plus", profiles, parse_config(path), path)


def test_a_config_for_another_backend_or_with_other_inputs_is_refused(tmp_path):
    repository = _repository_with_committed_configs(tmp_path, "gfpgan_v1_4")
    path = repository / "gfpgan_v1_4" / "configs" / "gpu_ort_trt.pbtxt"
    profiles = input_profiles(MODELS["gfpgan_v1_4"])
    with pytest.raises(
        PlanConfigError, match="platform is 'onnxruntime_onnx', not 'tensorrt_plan'"
    ):
        check_config("gfpgan_v1_4", profiles, parse_config(path), path)
    plan_config = repository / "gfpgan_v1_4" / "configs" / f"{GPU_TRT_PLAN}.pbtxt"
    _edit_config(plan_config, lambda c: setattr(c.input[0], "name", "image"))
    with pytest.raises(PlanConfigError, match=r"inputs \['image'\] are not the model's \['face'\]"):
        check_config("gfpgan_v1_4", profiles, parse_config(plan_config), plan_config)


def test_trtexecs_exported_outputs_are_read_with_their_dimensions_and_non_finite_values():
    text = (
        "[\n"
        '  { "name" : "high_res"\n'
        '  , "dimensions" : "1x2x2"\n'
        '  , "values" : [ 0.5, -1.25e-05, nan, -inf ]\n'
        "  }\n"
        ', { "name" : "inf_count"\n'
        '  , "dimensions" : "2"\n'
        '  , "values" : [ 3, 4 ]\n'
        "  }\n"
        "]\n"
    )
    outputs = parse_exported_outputs(text)
    assert outputs["high_res"].shape == (1, 2, 2)
    np.testing.assert_array_equal(outputs["high_res"].ravel()[:2], [0.5, -1.25e-05])
    assert np.isnan(outputs["high_res"].ravel()[2]) and outputs["high_res"].ravel()[3] == -np.inf
    np.testing.assert_array_equal(outputs["inf_count"], [3.0, 4.0])


def test_tensorrt_version_numbers_read_the_way_each_major_release_writes_them():
    assert version_from_number(8601) == "8.6.1"
    assert version_from_number(100300) == "10.3.0"


def test_the_parity_measures_the_worst_error_on_the_outputs_scale_and_fails_beyond_it():
    reference = np.linspace(-2.0, 2.0, 64).reshape(1, 4, 16)
    close, far = reference.copy(), reference.copy()
    close[0, 0, 0] += 0.02  # 1 % of the largest |value| (2.0)
    far[0, 0, 0] += 0.2  # 10 %
    ok, bad = (compare_plan({"y": reference}, {"y": p}, SUPER_RESOLUTION)[0] for p in (close, far))
    assert ok.passed and ok.max_abs_error == pytest.approx(0.02)
    assert ok.max_rel_error == pytest.approx(0.01) and ok.tolerance == pytest.approx(4 / 255)
    assert not bad.passed and bad.max_rel_error == pytest.approx(0.1)
    broken = reference.copy()
    broken[0, 1, 1] = np.nan
    (nan,) = compare_plan({"y": reference}, {"y": broken}, SUPER_RESOLUTION)
    (shape,) = compare_plan({"y": reference}, {"y": reference[0]}, SUPER_RESOLUTION)
    (missing,) = compare_plan({"y": reference}, {}, SUPER_RESOLUTION)
    assert not (nan.passed or shape.passed or missing.passed)
    assert "NaN" in nan.detail and "shape" in shape.detail and "no output" in missing.detail


def _manifest() -> Manifest:
    return Manifest(
        model="realesr_general_x4v3",
        description="d",
        variant="tiny",
        weights_kind="synthetic",
        weights_licence="n/a",
        weights_detail="seeded",
        weights_files=[SourceFile("weights/x.pth", "ab" * 32)],
        onnx_file="1/model.onnx",
        onnx_sha256="cd" * 32,
        opset=17,
        opset_reason="r",
        validation=[
            CheckResult(
                "onnxruntime_vs_pytorch", "high_res", "max_abs_error", 1e-6, 1e-4, True, "x"
            ),
            CheckResult(
                "c", "high_res", "shape", float("nan"), 1e-4, False, "x", "shape (1,) != (2,)"
            ),
        ],
        fingerprint="ef" * 32,
        created_at="2026-12-01T00:00:00+00:00",
        tools={"python": "3.11.7"},
        cpu_runtime={"runtime": "onnxruntime"},
    )


def _record(outputs: list, **overrides: object) -> PlanRecord:
    record = PlanRecord(
        plan_file="1/model.plan",
        plan_sha256="12" * 32,
        onnx_sha256="cd" * 32,
        precision="fp16",
        profile={
            "low_res": {"min": [1, 3, 64, 64], "opt": [8, 3, 148, 148], "max": [8, 3, 296, 296]}
        },
        optimum_source="the gateway's tiles",
        tensorrt_version="10.3.0",
        gpu="NVIDIA H100 80GB HBM3",
        build_time_s=12.5,
        built_at="2026-12-01T00:00:00+00:00",
        reference="onnxruntime FP32",
        sample="low_res 2x3x64x64 float32",
        family=SUPER_RESOLUTION.family,
        tolerance_metric="max_rel_error",
        tolerance=SUPER_RESOLUTION.max_rel_error,
        tolerance_reason=SUPER_RESOLUTION.reason,
        outputs=outputs,
    )
    return dataclasses.replace(record, **overrides)  # type: ignore[arg-type]


def test_the_parity_record_is_written_into_the_manifest_beside_everything_it_held(tmp_path):
    write_manifest(tmp_path, _manifest())
    before = json.loads((tmp_path / "manifest.json").read_text())
    reference = np.linspace(0.0, 1.0, 48).reshape(1, 3, 4, 4)
    outputs = compare_plan(
        {"high_res": reference}, {"high_res": reference + 1e-3}, SUPER_RESOLUTION
    )
    record_in_manifest(tmp_path, _record(outputs).as_dict())
    after = json.loads((tmp_path / "manifest.json").read_text())
    assert {k: v for k, v in after.items() if k != "tensorrt"} == {
        k: v for k, v in before.items() if k != "tensorrt"
    }
    entry = after["tensorrt"]
    assert entry["passed"] is True and entry["precision"] == "fp16"
    assert entry["tensorrt_version"] == "10.3.0" and entry["gpu"] == "NVIDIA H100 80GB HBM3"
    assert entry["build_time_s"] == 12.5 and entry["tolerance"] == pytest.approx(4 / 255)
    (output,) = entry["outputs"]
    assert output["output"] == "high_res" and output["passed"] is True
    assert output["max_abs_error"] == pytest.approx(1e-3)
    assert output["max_rel_error"] == pytest.approx(1e-3)
    failed = [dataclasses.replace(output_parity, passed=False) for output_parity in outputs]
    record_in_manifest(tmp_path, _record(failed, plan_sha256=None).as_dict())
    entry = json.loads((tmp_path / "manifest.json").read_text())["tensorrt"]
    assert entry["passed"] is False and entry["plan_sha256"] is None  # replaced, not appended
    # Written with plain json on the GPU side, read back by the exporter's own reader: the
    # same text its Manifest.to_json writes.
    read = load_manifest(tmp_path)
    assert read is not None and read.tensorrt == entry
    assert (tmp_path / "manifest.json").read_text() == read.to_json()


def test_a_manifest_read_back_is_the_manifest_that_was_written(tmp_path):
    written = _manifest()
    write_manifest(tmp_path, written)
    read = load_manifest(tmp_path)
    assert read is not None and read.to_json() == written.to_json()


def test_a_recorded_plan_is_current_only_for_the_same_onnx_profile_tensorrt_and_gpu(tmp_path):
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "model.plan").write_bytes(b"plan")
    plan = _record(
        compare_plan({"y": np.ones(2)}, {"y": np.ones(2)}, SUPER_RESOLUTION),
        plan_sha256=hashlib.sha256(b"plan").hexdigest(),
    )
    record, onnx, profile = plan.as_dict(), plan.onnx_sha256, plan.profile
    version, gpu = "10.3.0", "NVIDIA H100 80GB HBM3"
    assert is_current(record, tmp_path, onnx, profile, version, gpu)
    assert is_current(record, tmp_path, onnx, profile, None, None)  # unknown: not compared
    assert not is_current(record, tmp_path, "00" * 32, profile, version, gpu)
    other_profile = {"low_res": {**profile["low_res"], "opt": [4, 3, 148, 148]}}
    assert not is_current(record, tmp_path, onnx, other_profile, version, gpu)
    assert not is_current(record, tmp_path, onnx, profile, version, "NVIDIA L4")
    assert not is_current(record, tmp_path, onnx, profile, "10.4.0", gpu)
    (tmp_path / "1" / "model.plan").write_bytes(b"another plan")
    assert not is_current(record, tmp_path, onnx, profile, version, gpu)


# ---- the whole command, with trtexec stood in for ----

FAKE_TRTEXEC = '''\
#!{python}
"""trtexec's stand-in: a "plan" is a file naming its ONNX model; running it runs ONNX Runtime
on the raw --loadInputs files at --shapes, and --exportOutput is written as trtexec writes it
(6 significant digits, leading commas). FAKE_TRT_OFFSET is added to every output value."""
import os
import sys

import numpy as np
import onnxruntime as ort

options = dict(a[2:].split("=", 1) for a in sys.argv[1:] if "=" in a)
flags = {{a for a in sys.argv[1:] if "=" not in a}}
print("&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec")
if "--help" in flags:
    sys.exit(0)
print("[I] Selected Device: Fake GPU")
print("[I] TensorRT version: 10.3.0")
if "onnx" in options:
    assert "--fp16" in flags and "--skipInference" in flags
    for flag in ("minShapes", "optShapes", "maxShapes", "timingCacheFile"):
        assert flag in options, flag
    open(options["timingCacheFile"], "a").close()
    with open(options["saveEngine"], "w") as plan:
        plan.write(options["onnx"])
    sys.exit(0)
with open(options["loadEngine"]) as plan:
    session = ort.InferenceSession(plan.read(), providers=["CPUExecutionProvider"])
dtypes = {{"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(int32)": np.int32}}
types = {{i.name: dtypes[i.type] for i in session.get_inputs()}}
shapes = dict(spec.split(":") for spec in options["shapes"].split(","))
feeds = {{}}
for spec in options["loadInputs"].split(","):
    name, path = spec.split(":", 1)
    shape = tuple(int(size) for size in shapes[name].split("x"))
    feeds[name] = np.fromfile(path, dtype=types[name]).reshape(shape)
offset = float(os.environ.get("FAKE_TRT_OFFSET", "0"))
names = [o.name for o in session.get_outputs()]
with open(options["exportOutput"], "w") as out:
    out.write("[\\n")
    sep = "  "
    for name, value in zip(names, session.run(names, feeds)):
        out.write(sep + '{{ "name" : "' + name + '"\\n')
        sep = ", "
        out.write("  " + sep + '"dimensions" : "' + "x".join(map(str, value.shape)) + '"\\n')
        values = sep.join(f"{{v:g}}" for v in (value.astype(np.float64) + offset).ravel())
        out.write("  " + sep + '"values" : [ ' + values + " ]\\n  }}\\n")
    out.write("]\\n")
'''


@pytest.fixture(scope="module")
def tiny_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny variant of one model exported the way `make models` exports: its committed
    configs in the repository first, then `python -m export`, which installs it, stamps its
    configs and writes its TensorRT job (the prepare step)."""
    repository = tmp_path_factory.mktemp("trt") / "repo"
    write_configs(repository, config_files([MODELS[TINY_MODEL]], []))
    argv = [TINY_MODEL, "--tiny", "--repository", str(repository), "--quiet"]
    assert cli.run(argv) == 0
    return repository


def test_the_export_leaves_the_job_and_its_sample_in_the_version_folder(tiny_repository, capsys):
    version_dir = tiny_repository / TINY_MODEL / "1"
    job = read_job(tiny_repository / TINY_MODEL)
    assert job is not None and (version_dir / SAMPLE_FILE).is_file()
    stored = json.loads((version_dir / JOB_FILE).read_text())
    assert (
        stored["onnx_sha256"]
        == hashlib.sha256((version_dir / "model.onnx").read_bytes()).hexdigest()
    )
    assert job.variant == "tiny" and job.precision == "fp16" and job.plan_file == "model.plan"
    assert job.tolerance == SUPER_RESOLUTION and job.outputs == ("high_res",)
    (profile,) = job.inputs
    assert (profile.name, profile.opt) == ("low_res", (8, 3, 148, 148))
    inputs, reference = trt_job.read_sample(tiny_repository / TINY_MODEL, job)
    assert inputs["low_res"].shape == (2, 3, 64, 64) and inputs["low_res"].dtype == np.float32
    assert reference["high_res"].shape == (2, 3, 256, 256)  # ONNX Runtime's, at batch 2
    assert "onnxruntime" in job.sample.reference and "CPUExecutionProvider" in job.sample.reference
    # Exported again with nothing changed, the job is kept as it was.
    argv = [TINY_MODEL, "--tiny", "--repository", str(tiny_repository), "--quiet"]
    assert cli.run(argv) == 0 and "TensorRT job up to date" in capsys.readouterr().out
    assert json.loads((version_dir / JOB_FILE).read_text()) == stored


def test_the_build_dry_run_runs_without_the_exporters_packages_and_prints_the_commands(
    tiny_repository: Path, tmp_path: Path
) -> None:
    """As the tritonserver image runs it: `python -m export.trt_build`, in a fresh interpreter
    with only the project on its path (torch, onnx, onnxruntime and tritonclient refused)."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "class Refuse:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'torch', 'onnx', 'onnxruntime', 'tritonclient',\n"
        "                                  'tqdm', 'google', 'openvino'}:\n"
        "            raise ImportError(f'{name} is not in the tritonserver image')\n"
        "sys.meta_path.insert(0, Refuse())\n"
    )
    root = Path(__file__).resolve().parents[2]
    cache = tmp_path / "cache"
    command = [sys.executable, "-m", "export.trt_build", "--dry-run"]
    command += ["--repository", str(tiny_repository), "--timing-cache", str(cache)]
    command += ["--trtexec", "/usr/src/tensorrt/bin/trtexec"]
    env = {
        "PYTHONPATH": f"{blocker}:{root}",
        "PATH": "/usr/bin:/bin",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, cwd=root)
    assert done.returncode == 0, done.stderr
    lines = [shlex.split(line) for line in done.stdout.splitlines() if not line.startswith("#")]
    (build,) = [c for c in lines if c[1].startswith("--onnx=")]
    (run,) = [c for c in lines if c[1].startswith("--loadEngine=")]
    version_dir = tiny_repository / TINY_MODEL / "1"
    assert build[0] == "/usr/src/tensorrt/bin/trtexec"
    assert build[1] == f"--onnx={version_dir / 'model.onnx'}"
    _flag_values(build, TINY_MODEL)
    assert f"--timingCacheFile={cache / 'timing.cache'}" in build
    assert f"--saveEngine={version_dir / 'model.plan.new'}" in build
    assert "--shapes=low_res:2x3x64x64" in run
    assert any(a.startswith("--loadInputs=low_res:") for a in run)
    assert any(a.startswith("--exportOutput=") for a in run)
    assert f"# {TINY_MODEL} (tiny): optimum low_res 8x3x148x148" in done.stdout
    assert not cache.exists(), "a dry run writes nothing"


@pytest.fixture
def fake_build(tmp_path, tiny_repository, monkeypatch) -> Callable[..., tuple[int, str, str]]:
    repository = tmp_path / "repo"
    shutil.copytree(tiny_repository, repository)
    trtexec = tmp_path / "trtexec"
    trtexec.write_text(FAKE_TRTEXEC.format(python=sys.executable))
    trtexec.chmod(0o755)
    monkeypatch.setattr(trt_build, "probe_gpu", lambda: None)  # GPU name from trtexec's log

    def build(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
        argv = [
            "--repository", str(repository), "--models", TINY_MODEL, "--trtexec", str(trtexec),
            "--timing-cache", str(tmp_path / "cache"), "--work-dir", str(tmp_path / "work"),
            *extra,
        ]  # fmt: skip
        return run_build(argv, capsys)

    return build


def _entry(repository: Path) -> dict:
    manifest = read_manifest(repository / TINY_MODEL)
    assert manifest is not None
    return manifest["tensorrt"]  # type: ignore[return-value]


def test_a_plan_that_passes_parity_is_kept_recorded_and_not_built_again(
    tmp_path, fake_build, capsys
):
    status, out, err = fake_build(capsys)
    assert status == 0, err
    assert f"[1/1] {TINY_MODEL}: FP16 plan, optimum low_res 8x3x148x148" in out
    plan = tmp_path / "repo" / TINY_MODEL / "1" / "model.plan"
    assert plan.is_file() and not plan.with_name("model.plan.new").exists()
    entry = _entry(tmp_path / "repo")
    assert entry["passed"] is True and entry["gpu"] == "Fake GPU"
    assert entry["tensorrt_version"] == "10.3.0" and entry["family"] == "super_resolution"
    assert entry["profile"]["low_res"]["opt"] == [8, 3, 148, 148]
    assert entry["outputs"][0]["max_rel_error"] < 1e-5  # 6 printed digits of the same numbers
    assert "2x3x64x64" in entry["sample"] and "onnxruntime" in entry["reference"]
    assert (tmp_path / "cache" / "timing.cache").is_file()
    assert not (tmp_path / "work" / TINY_MODEL).exists(), "a passed plan's work is removed"
    assert "parity passed" in out
    assert load_manifest(tmp_path / "repo" / TINY_MODEL) is not None  # the exporter reads it
    status, out, _ = fake_build(capsys)
    assert status == 0 and "up to date" in out
    status, out, _ = fake_build(capsys, "--force")
    assert status == 0 and "plan built" in out


def test_a_plan_that_fails_parity_is_deleted_and_the_command_exits_non_zero(
    tmp_path, fake_build, capsys, monkeypatch
):
    assert fake_build(capsys)[0] == 0  # an earlier plan that passed
    monkeypatch.setenv("FAKE_TRT_OFFSET", "0.5")
    status, out, _ = fake_build(capsys, "--force")
    assert status == 1 and "FAILED" in out and "plan deleted" in out
    version_dir = tmp_path / "repo" / TINY_MODEL / "1"
    assert not (version_dir / "model.plan").exists()
    assert not (version_dir / "model.plan.new").exists()
    entry = _entry(tmp_path / "repo")
    assert entry["passed"] is False and entry["plan_sha256"] is None
    assert entry["outputs"][0]["max_abs_error"] == pytest.approx(0.5, rel=1e-3)


def test_a_job_written_for_another_onnx_file_is_refused(tmp_path, fake_build, capsys):
    onnx = tmp_path / "repo" / TINY_MODEL / "1" / "model.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    status, out, _ = fake_build(capsys)
    assert status == 1 and "its job was written for another model.onnx" in out
    assert not (onnx.parent / "model.plan").exists()


def test_without_trtexec_the_build_fails_cleanly_and_says_what_it_needs(
    tmp_path, tiny_repository, capsys
):
    argv = ["--repository", str(tiny_repository), "--trtexec", str(tmp_path / "no-trtexec")]
    status, _, err = run_build(argv, capsys)
    assert status == 2
    assert "no trtexec" in err and "tritonserver image" in err and "--dry-run" in err


def test_a_repository_without_jobs_is_refused_and_a_named_model_without_one_fails(tmp_path, capsys):
    repository = _repository_with_committed_configs(tmp_path, "realesrgan_x4plus")
    status, _, err = run_build(["--dry-run", "--repository", str(repository)], capsys)
    assert status == 2 and "no TensorRT job" in err
    argv = ["--dry-run", "--repository", str(repository), "--models", "realesrgan_x4plus"]
    status, out, err = run_build(argv, capsys)
    assert status == 1 and "python -m export realesrgan_x4plus" in err and "--onnx=" not in out


def test_a_new_export_removes_the_plan_and_the_job_of_the_old_onnx_file(tmp_path, tiny_repository):
    repository = tmp_path / "repo"
    shutil.copytree(tiny_repository, repository)
    version_dir = repository / TINY_MODEL / "1"
    plan = version_dir / "model.plan"
    plan.write_bytes(b"a plan of the previous model.onnx")
    assert (version_dir / JOB_FILE).is_file()
    options = ExportOptions(
        repository=repository, weights="synthetic", tiny=True, force=True, show_progress=False
    )
    export_any(MODELS[TINY_MODEL], options)
    assert not plan.exists()
    assert not (version_dir / JOB_FILE).exists() and not (version_dir / SAMPLE_FILE).exists()


def _gpu_with_trtexec() -> bool:
    smi = shutil.which("nvidia-smi")
    if smi is None or trt_build.locate_trtexec(None) is None:
        return False
    return subprocess.run([smi, "-L"], capture_output=True, check=False).returncode == 0


@pytest.mark.skipif(not _gpu_with_trtexec(), reason="needs trtexec and a CUDA GPU")
def test_a_real_plan_of_the_tiny_model_is_built_and_matches_onnx_runtime(
    tmp_path, tiny_repository, capsys
):
    repository = tmp_path / "repo"
    shutil.copytree(tiny_repository, repository)
    argv = ["--repository", str(repository), "--models", TINY_MODEL]
    work = ["--timing-cache", str(tmp_path / "cache"), "--work-dir", str(tmp_path / "work")]
    status, out, err = run_build([*argv, *work], capsys)
    assert status == 0, out + err
    assert (repository / TINY_MODEL / "1" / "model.plan").is_file()
    entry = _entry(repository)
    assert entry["passed"] is True and entry["gpu"] and entry["tensorrt_version"]
    assert entry["outputs"][0]["max_rel_error"] <= entry["tolerance"]
