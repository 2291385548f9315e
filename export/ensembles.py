"""Ensembles: the uint8-in, uint8-out faces of the float models, assembled inside Triton."""

from __future__ import annotations

from export.models.arcface import ARCFACE_W600K_R50
from export.models.dlib_face import DLIB_RESNET_V1
from export.models.gfpgan import GFPGAN_V1_4
from export.models.inswapper import INSWAPPER_128
from export.models.realesrgan import REALESR_GENERAL_X4V3, REALESRGAN_X4PLUS
from export.spec import ModelSpec, TensorSpec
from export.triton_config import EnsembleSpec, EnsembleStep


def upscale_ensemble(model: ModelSpec) -> EnsembleSpec:
    """image (uint8 NHWC) → image_to_tensor → model → tensor_to_image → upscaled_image."""
    return EnsembleSpec(
        name=f"upscale_{model.name}",
        description=f"uint8 RGB tiles in, uint8 RGB tiles out, through {model.name}",
        max_batch_size=model.batching.max_batch_size,
        inputs=(TensorSpec("image", "TYPE_UINT8", (-1, -1, 3)),),
        outputs=(TensorSpec("upscaled_image", "TYPE_UINT8", (-1, -1, 3)),),
        steps=(
            EnsembleStep("image_to_tensor", (("image", "image"),), (("tensor", "low_res"),)),
            EnsembleStep(model.name, (("low_res", "low_res"),), (("high_res", "high_res"),)),
            EnsembleStep(
                "tensor_to_image", (("tensor", "high_res"),), (("image", "upscaled_image"),)
            ),
        ),
    )


def restore_ensemble(model: ModelSpec) -> EnsembleSpec:
    """face (uint8 NHWC) → face_to_tensor → model → tensor_to_face → restored_face."""
    size = model.inputs[0].dims[1:]
    return EnsembleSpec(
        name=f"restore_{model.name}",
        description=f"uint8 RGB aligned faces in, restored faces out, through {model.name}",
        max_batch_size=model.batching.max_batch_size,
        inputs=(TensorSpec("face", "TYPE_UINT8", (*size, 3)),),
        outputs=(TensorSpec("restored_face", "TYPE_UINT8", (*size, 3)),),
        steps=(
            EnsembleStep("face_to_tensor", (("image", "face"),), (("tensor", "face_tensor"),)),
            EnsembleStep(model.name, (("face", "face_tensor"),), (("restored", "restored"),)),
            EnsembleStep(
                "tensor_to_face", (("tensor", "restored"),), (("image", "restored_face"),)
            ),
        ),
    )


def embed_ensemble(model: ModelSpec, preprocess: str = "face_to_float") -> EnsembleSpec:
    """face (uint8 NHWC) → `preprocess` (the model's own input scaling) → model → embedding."""
    size = model.inputs[0].dims[1:]
    return EnsembleSpec(
        name=f"embed_{model.name}",
        description=f"uint8 RGB aligned face chips in, face descriptors out, through {model.name}",
        max_batch_size=model.batching.max_batch_size,
        inputs=(TensorSpec("face", "TYPE_UINT8", (*size, 3)),),
        outputs=(TensorSpec("embedding", "TYPE_FP32", model.outputs[0].dims),),
        steps=(
            EnsembleStep(preprocess, (("image", "face"),), (("tensor", "face_tensor"),)),
            EnsembleStep(
                model.name,
                ((model.inputs[0].name, "face_tensor"),),
                ((model.outputs[0].name, "embedding"),),
            ),
        ),
    )


def swap_ensemble(model: ModelSpec) -> EnsembleSpec:
    """target (uint8 NHWC) + source latent (float) → image_to_tensor → model → tensor_to_image
    → swapped_face (uint8): how gRPC clients reach the swap straight from Triton."""
    target, source = model.inputs
    size = target.dims[1:]
    return EnsembleSpec(
        name=f"swap_{model.name}",
        description=f"uint8 RGB aligned target faces and source latents (swap_latent) in, "
        f"swapped uint8 faces out, through {model.name}",
        max_batch_size=model.batching.max_batch_size,
        inputs=(TensorSpec("target", "TYPE_UINT8", (*size, 3)), source),
        outputs=(TensorSpec("swapped_face", "TYPE_UINT8", (*size, 3)),),
        steps=(
            EnsembleStep("image_to_tensor", (("image", "target"),), (("tensor", "target_tensor"),)),
            EnsembleStep(
                model.name,
                (("target", "target_tensor"), ("source", "source")),
                (("swapped", "swapped"),),
            ),
            EnsembleStep("tensor_to_image", (("tensor", "swapped"),), (("image", "swapped_face"),)),
        ),
    )


ENSEMBLES: dict[str, EnsembleSpec] = {
    e.name: e
    for e in (
        upscale_ensemble(REALESRGAN_X4PLUS),
        upscale_ensemble(REALESR_GENERAL_X4V3),
        restore_ensemble(GFPGAN_V1_4),
        embed_ensemble(DLIB_RESNET_V1),
        # face_to_tensor's (x/255 − 0.5)/0.5 is ArcFace's (x − 127.5)/127.5.
        embed_ensemble(ARCFACE_W600K_R50, preprocess="face_to_tensor"),
        swap_ensemble(INSWAPPER_128),
    )
}
