"""One exception hierarchy for the export pipeline; every stage raises one of these."""


class ExportError(Exception):
    """Base class: an export could not produce a verified model."""


class WeightsError(ExportError):
    """Weights could not be found, their hash did not match, or they did not load strictly."""


class ConversionError(ExportError):
    """A foreign weight format (e.g. ncnn) could not be mapped onto the architecture."""


class ValidationError(ExportError):
    """An exported artefact disagrees with its reference beyond tolerance."""

    def __init__(
        self,
        model: str,
        output: str,
        error: float,
        tolerance: float,
        metric: str,
        *,
        also: list[str] | None = None,
    ):
        self.model = model
        self.output = output
        self.error = error
        self.tolerance = tolerance
        self.metric = metric
        self.also = also or []
        message = (
            f"{model}: output '{output}' failed validation: {metric} = {error:.6g} "
            f"(tolerance {tolerance:.6g})"
        )
        if self.also:
            message += "; also failed: " + "; ".join(self.also)
        super().__init__(message)


class TensorRTError(ExportError):
    """A TensorRT plan could not be built or run, or disagrees with its ONNX model."""


class PlanConfigError(TensorRTError):
    """A model's TensorRT profile and its gpu_trt_plan config (or its inputs) disagree."""
