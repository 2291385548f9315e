"""Ensembles: the uint8-in, uint8-out faces of the float models, assembled inside Triton."""

from __future__ import annotations

from export.models.gfpgan import GFPGAN_V1_4
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


ENSEMBLES: dict[str, EnsembleSpec] = {
    e.name: e
    for e in (
        upscale_ensemble(REALESRGAN_X4PLUS),
        upscale_ensemble(REALESR_GENERAL_X4V3),
        restore_ensemble(GFPGAN_V1_4),
    )
}
