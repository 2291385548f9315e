"""Face geometry for restoration: detected faces, alignment to a template, and paste-back.

Everything here is pure numpy/OpenCV over RGB uint8 arrays; the models (detector, restorer)
plug in through the protocols in `types`, so Triton sessions or fakes can serve them.
"""

from gateway.faces.types import Face, FaceDetector, FaceRestorer

__all__ = ["Face", "FaceDetector", "FaceRestorer"]
