"""The seed's restorer protocol and result, field for field.

`cropped_faces` / `restored_faces` hold file paths, as the seed types them: a restoration asked
for faces with `save_faces` (a directory) writes them there. The pixels themselves are in the
two fields Facet adds, `cropped_face_images` / `restored_face_images`, whenever faces were asked
for (`save_faces`, or `return_faces: True`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class RestoreResult:
    input_path: str | None
    restored_path: str | None
    restored_image: Any | None  # numpy array, in the input's channel order (BGR by default)
    cropped_faces: list[str]
    restored_faces: list[str]
    metrics: dict[str, Any]
    cropped_face_images: list[Any] = field(default_factory=list)
    restored_face_images: list[Any] = field(default_factory=list)


class Restorer(Protocol):
    def prepare(self, cfg: dict[str, Any]) -> None: ...

    def restore(self, image: Any, cfg: dict[str, Any]) -> RestoreResult: ...
