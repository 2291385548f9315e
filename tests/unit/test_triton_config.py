"""The committed Triton configs are valid ModelConfigs and equal what the specs render."""

from pathlib import Path

import pytest
from tritonclient.grpc import model_config_pb2 as mc

from export.registry import ENSEMBLES, GRAPHS, MODELS, PACKAGED, PYTHON_MODELS
from export.triton_config import CPU_BACKEND, config_files, parse_config

REPOSITORY = Path(__file__).resolve().parents[2] / "model_repository"
EXPECTED = config_files(
    [*MODELS.values(), *GRAPHS.values(), *PACKAGED.values()],
    ENSEMBLES.values(),
    PYTHON_MODELS.values(),
)
# Reached only through a Python (BLS) model whose own queue is bounded; see
# export/models/mtcnn.py for why these set no queue policy of their own.
BOUNDED_BY_CALLER = {name for model in PYTHON_MODELS.values() for name in model.requires}
COMMITTED = sorted(REPOSITORY.glob("*/config.pbtxt")) + sorted(REPOSITORY.glob("*/configs/*.pbtxt"))


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(REPOSITORY)))
def test_every_committed_config_parses_as_a_triton_model_config(path: Path) -> None:
    config = parse_config(path)
    model_dir = path.parent if path.name == "config.pbtxt" else path.parent.parent
    assert config.name == model_dir.name


@pytest.mark.parametrize("relative", sorted(EXPECTED), ids=str)
def test_committed_config_equals_what_its_spec_renders(relative: Path) -> None:
    path = REPOSITORY / relative
    assert path.is_file(), f"{relative} is missing: run `python -m export configs`"
    assert parse_config(path) == EXPECTED[relative], f"{relative} drifted from its spec"


def test_no_committed_config_lacks_a_spec() -> None:
    committed = {p.relative_to(REPOSITORY) for p in COMMITTED}
    assert committed == set(EXPECTED)


def test_cpu_configs_bound_their_queue_so_overload_is_rejected() -> None:
    for relative, config in EXPECTED.items():
        if config.backend == CPU_BACKEND and config.name not in BOUNDED_BY_CALLER:
            assert config.dynamic_batching.default_queue_policy.max_queue_size > 0, relative
    for model in PYTHON_MODELS.values():
        config = EXPECTED[Path(model.name, "config.pbtxt")]
        assert config.dynamic_batching.default_queue_policy.max_queue_size > 0, model.name


def _is_image(dims: tuple[int, ...]) -> bool:
    return len(dims) == 3 and dims[-1] == 3  # H, W, RGB


def test_images_cross_the_wire_as_uint8_in_every_ensemble() -> None:
    for ensemble in ENSEMBLES.values():
        tensors = (*ensemble.inputs, *ensemble.outputs)
        assert any(_is_image(t.dims) for t in ensemble.inputs), ensemble.name
        for tensor in tensors:
            # Vectors (embeddings, swap latents) are float by nature; every image is uint8.
            expected = "TYPE_UINT8" if _is_image(tensor.dims) else "TYPE_FP32"
            assert tensor.dtype == expected, (ensemble.name, tensor.name)


def _io(name: str) -> tuple[dict[str, int], dict[str, int]]:
    config = EXPECTED[Path(name, "config.pbtxt")]
    return (
        {t.name: t.data_type for t in config.input},
        {t.name: t.data_type for t in config.output},
    )


@pytest.mark.parametrize("name", sorted(ENSEMBLES))
def test_ensemble_steps_connect_tensors_of_matching_types(name: str) -> None:
    config = EXPECTED[Path(name, "config.pbtxt")]
    produced = {t.name: t.data_type for t in config.input}
    for step in config.ensemble_scheduling.step:
        inputs, outputs = _io(step.model_name)
        for step_input, tensor in step.input_map.items():
            assert produced[tensor] == inputs[step_input], (step.model_name, step_input)
        for step_output, tensor in step.output_map.items():
            produced[tensor] = outputs[step_output]
        assert (
            EXPECTED[Path(step.model_name, "config.pbtxt")].max_batch_size >= config.max_batch_size
        )
    for output in config.output:
        assert produced[output.name] == output.data_type
        if _is_image(tuple(output.dims)):
            assert output.data_type == mc.TYPE_UINT8


def test_gpu_configs_use_native_backends() -> None:
    for relative, config in EXPECTED.items():
        if relative.parent.name == "configs" and relative.stem.startswith("gpu_"):
            assert config.platform in {"onnxruntime_onnx", "tensorrt_plan"}, relative
            assert config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU


def test_config_pbtxt_serves_the_runtime_the_spec_plans() -> None:
    for spec in MODELS.values():
        config = EXPECTED[Path(spec.name, "config.pbtxt")]
        backend = {"onnxruntime": "facet_ort", "openvino": "facet_openvino"}[spec.cpu_plan[0]]
        assert config.backend == backend, spec.name


def test_every_exported_model_offers_both_cpu_runtimes_with_one_thread_budget() -> None:
    alternatives = [r for r in EXPECTED if r.parent.name == "configs" and r.stem.startswith("cpu_")]
    assert alternatives, "no CPU alternative configs"
    for relative in alternatives:
        config = EXPECTED[relative]
        main = EXPECTED[Path(relative.parts[0], "config.pbtxt")]
        assert (
            config.backend
            == {"cpu_ort": "facet_ort", "cpu_openvino": "facet_openvino"}[relative.stem]
        )
        assert config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
        assert config.max_batch_size == main.max_batch_size and config.input == main.input
        if config.backend == "facet_openvino":
            ort_config = EXPECTED[relative.with_name("cpu_ort.pbtxt")]
            threads = ort_config.parameters["intra_op_thread_count"].string_value
            assert config.parameters["num_threads"].string_value == threads
            assert config.parameters["precision"].string_value in ("f32", "bf16")
