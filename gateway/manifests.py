"""What the installed models are made of, read from the manifests the exporter writes, so that
health output and responses can say when a model runs on synthetic weights."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

SYNTHETIC_WARNING = "synthetic weights: outputs are not meaningful"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    installed: bool
    weights_kind: str | None = None
    licence: str | None = None

    @property
    def synthetic(self) -> bool:
        return self.weights_kind == "synthetic"

    def as_dict(self) -> dict[str, object]:
        info: dict[str, object] = {
            "installed": self.installed,
            "weights": self.weights_kind,
            "synthetic": self.synthetic,
            "licence": self.licence,
        }
        if self.synthetic:
            info["warning"] = SYNTHETIC_WARNING
        return info


def read_model_info(repository: Path, name: str) -> ModelInfo:
    path = repository / name / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return ModelInfo(name=name, installed=False)
    return ModelInfo(
        name=name,
        installed=True,
        weights_kind=str(manifest.get("weights_kind")),
        licence=str(manifest.get("weights_licence")),
    )
