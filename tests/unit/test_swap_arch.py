"""The face-swap architectures: ArcFace iresnet50, the inswapper_128 re-implementation and the
swap latent. Full models are built on the meta device (shapes only, no memory), so their
parameter and MAC counts cost nothing; the tiny variants run for real."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch.utils.flop_counter import FlopCounterMode

from export.arch.inswapper import (
    INSWAPPER_TINY,
    InSwapper,
    ReflectPad2d,
    StyleBlock,
    SwapLatent,
    inswapper_128,
    inswapper_tiny,
)
from export.arch.iresnet import IBasicBlock, IResNet, iresnet50, iresnet_tiny
from export.errors import WeightsError
from export.hashing import sha256_of
from export.models.arcface import ARCFACE_GMAC, ARCFACE_PARAMETERS, ARCFACE_W600K_R50
from export.models.inswapper import (
    INSWAPPER_128,
    INSWAPPER_GMAC,
    INSWAPPER_PARAMETERS,
    SWAP_LATENT,
    emap_from_inswapper,
    latent_reference,
    validation_embeddings,
    validation_faces,
    validation_latents,
)
from export.pipeline import ExportOptions, export_any


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def gmac(model: torch.nn.Module, *inputs: torch.Tensor) -> float:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(*inputs)
    return float(counter.get_total_flops()) / 2e9


@pytest.fixture(scope="module")
def arcface_on_meta() -> IResNet:
    with torch.device("meta"):
        return iresnet50().eval()


@pytest.fixture(scope="module")
def inswapper_on_meta() -> InSwapper:
    with torch.device("meta"):
        return inswapper_128().eval()


def test_iresnet50_has_the_parameters_and_macs_the_spec_states(arcface_on_meta) -> None:
    assert count_parameters(arcface_on_meta) == ARCFACE_PARAMETERS
    face = torch.empty(1, 3, 112, 112, device="meta")
    assert gmac(arcface_on_meta, face) == pytest.approx(ARCFACE_GMAC, abs=0.005)


def test_iresnet50_has_insightface_stages_and_module_names(arcface_on_meta) -> None:
    stages = [arcface_on_meta.layer1, arcface_on_meta.layer2]
    stages += [arcface_on_meta.layer3, arcface_on_meta.layer4]
    assert [len(stage) for stage in stages] == [3, 4, 14, 3]
    keys = set(arcface_on_meta.state_dict())
    for key in (
        "conv1.weight",
        "bn1.running_var",
        "prelu.weight",
        "layer1.0.bn1.weight",
        "layer1.0.conv1.weight",
        "layer1.0.bn2.bias",
        "layer1.0.prelu.weight",
        "layer1.0.conv2.weight",
        "layer1.0.bn3.running_mean",
        "layer1.0.downsample.0.weight",
        "layer1.0.downsample.1.weight",
        "layer3.13.conv2.weight",
        "bn2.weight",
        "fc.weight",
        "features.running_var",
    ):
        assert key in keys, key
    assert arcface_on_meta.fc.weight.shape == (512, 512 * 7 * 7)
    assert "layer1.1.downsample.0.weight" not in keys  # only where the shape changes


def test_an_ibasicblock_strides_in_its_second_convolution() -> None:
    block = IBasicBlock(4, 8, stride=2).eval()
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)
    with torch.no_grad():
        assert block(torch.rand(1, 4, 16, 16)).shape == (1, 8, 8, 8)


def test_the_tiny_iresnet_keeps_the_served_shapes() -> None:
    model = iresnet_tiny().eval()
    with torch.no_grad():
        embedding = model(torch.rand(2, 3, 112, 112) * 2 - 1)
    assert embedding.shape == (2, 512)
    assert type(model) is IResNet and count_parameters(model) < 50_000


def test_inswapper_comes_close_to_the_published_size_and_cost(inswapper_on_meta) -> None:
    assert count_parameters(inswapper_on_meta) == INSWAPPER_PARAMETERS
    target = torch.empty(1, 3, 128, 128, device="meta")
    source = torch.empty(1, 512, device="meta")
    assert gmac(inswapper_on_meta, target, source) == pytest.approx(INSWAPPER_GMAC, abs=0.005)


def test_inswapper_encodes_to_1024_channels_at_32_and_styles_six_blocks(inswapper_on_meta) -> None:
    with torch.no_grad():
        features = inswapper_on_meta.encoder(torch.empty(1, 3, 128, 128, device="meta"))
    assert features.shape == (1, 1024, 32, 32)
    blocks = inswapper_on_meta.style_blocks
    assert len(blocks) == 6 and all(isinstance(b, StyleBlock) for b in blocks)
    first = blocks[0]
    assert isinstance(first, StyleBlock)
    assert first.style1.scale.weight.shape == first.style1.shift.weight.shape == (1024, 512)


def test_the_tiny_inswapper_keeps_the_served_shapes_and_range() -> None:
    model = inswapper_tiny().eval()
    assert type(model) is InSwapper and count_parameters(model) < 50_000
    assert len(model.style_blocks) == INSWAPPER_TINY.style_blocks
    target = torch.from_numpy(validation_faces(2))
    with torch.no_grad():
        swapped = model(target, torch.from_numpy(validation_latents(2)))
    assert swapped.shape == (2, 3, 128, 128)
    assert float(swapped.min()) >= 0.0 and float(swapped.max()) <= 1.0


def test_the_source_latent_changes_the_swapped_face() -> None:
    model = inswapper_tiny().eval()
    state = INSWAPPER_128.synthetic_adjust(model.state_dict())  # type: ignore[misc]
    model.load_state_dict(state)
    target = torch.from_numpy(validation_faces(1)).repeat(2, 1, 1, 1)
    with torch.no_grad():
        swapped = model(target, torch.from_numpy(validation_latents(2)))
    assert float((swapped[0] - swapped[1]).abs().mean()) > 1e-3


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_reflection_padding_exports_as_one_pad_with_static_shapes(tmp_path: Path) -> None:
    path = tmp_path / "pad.onnx"
    torch.onnx.export(
        ReflectPad2d(3).eval(),
        (torch.rand(1, 2, 8, 8),),
        str(path),
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
        opset_version=17,
        dynamo=False,
    )
    graph = onnx.load(str(path)).graph
    assert [n.op_type for n in graph.node if n.op_type != "Constant"] == ["Pad"]
    dims = [d.dim_value or d.dim_param for d in graph.output[0].type.tensor_type.shape.dim]
    assert dims == ["n", 2, 14, 14]
    x = torch.rand(1, 2, 8, 8)
    np.testing.assert_array_equal(
        ReflectPad2d(3)(x).numpy(), torch.nn.functional.pad(x, (3,) * 4, mode="reflect").numpy()
    )


def test_swap_latent_equals_insightfaces_numpy_computation() -> None:
    model = SwapLatent().eval()
    model.emap.copy_(torch.from_numpy(np.random.default_rng(0).standard_normal((512, 512))))
    feeds = {"embedding": validation_embeddings(2)}
    with torch.no_grad():
        latent = model(torch.from_numpy(feeds["embedding"])).numpy()
    np.testing.assert_allclose(latent, latent_reference(model, feeds)["latent"], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(latent, axis=1), 1.0, atol=1e-6)


def test_swap_latent_ignores_the_embeddings_norm() -> None:
    model = SwapLatent().eval()
    embedding = torch.from_numpy(validation_embeddings(1))
    with torch.no_grad():
        np.testing.assert_allclose(model(embedding * 25), model(embedding), atol=1e-6)


def save_swapper_stand_in(path: Path, emap: np.ndarray) -> None:
    """A graph shaped like inswapper_128.onnx where it matters here: emap is the last
    initializer (the real file's emap is not used by its own graph either)."""
    weight = numpy_helper.from_array(np.ones((1,), np.float32), "w")
    last = numpy_helper.from_array(emap, "buff2fs")
    node = helper.make_node("Mul", ["x", "w"], ["y"])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([node], "stand_in", [x], [y], initializer=[weight, last])
    onnx.save(helper.make_model(graph), str(path))


def test_emap_is_the_swapper_graphs_last_initializer(tmp_path: Path) -> None:
    emap = np.random.default_rng(1).standard_normal((512, 512)).astype(np.float32)
    save_swapper_stand_in(tmp_path / "inswapper_128.onnx", emap)
    state = emap_from_inswapper(tmp_path / "inswapper_128.onnx")
    np.testing.assert_array_equal(state["emap"].numpy(), emap)
    save_swapper_stand_in(tmp_path / "other.onnx", emap[:256])
    with pytest.raises(WeightsError, match="expected emap"):
        emap_from_inswapper(tmp_path / "other.onnx")


def test_swap_latent_installs_the_official_emap_and_checks_it_against_numpy(tmp_path) -> None:
    emap = np.random.default_rng(2).standard_normal((512, 512)).astype(np.float32)
    weights = tmp_path / "weights"
    weights.mkdir()
    save_swapper_stand_in(weights / "inswapper_128.onnx", emap)
    assert SWAP_LATENT.official is not None
    official = dataclasses.replace(
        SWAP_LATENT.official, sha256=sha256_of(weights / "inswapper_128.onnx")
    )
    spec = dataclasses.replace(SWAP_LATENT, official=official)
    options = ExportOptions(tmp_path / "repo", "auto", weights, True, False, False)
    outcome = export_any(spec, options)
    manifest = json.loads(outcome.manifest.read_text())
    assert manifest["weights_kind"] == "official"
    assert "non-commercial" in manifest["weights_licence"]
    assert {c["check"] for c in manifest["validation"]} == {
        "onnxruntime_vs_pytorch",
        "onnxruntime_vs_numpy",
    }
    session_path = tmp_path / "repo" / "swap_latent" / "1" / "model.onnx"
    from export.validate import open_session

    embedding = validation_embeddings(2)
    served = open_session(session_path).run(["latent"], {"embedding": embedding})[0]
    normed = embedding / np.linalg.norm(embedding, axis=1, keepdims=True)
    expected = normed @ emap
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(served, expected, atol=1e-6)


def test_the_specs_say_the_embedding_is_not_normalised_and_the_weights_are_research_only():
    assert "NOT L2-normalised" in ARCFACE_W600K_R50.description
    for spec in (ARCFACE_W600K_R50, SWAP_LATENT, INSWAPPER_128):
        assert spec.official is not None
        assert "non-commercial research only" in spec.official.licence
        assert len(spec.official.sha256) == 64
