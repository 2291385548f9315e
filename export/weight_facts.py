"""The weight facts a served model's config carries as `parameters`: which source its weights
came from and under which licence. Triton serves them with the config, so the gateway and any
client learn them from Triton (on any host) instead of reading manifest files.

The committed configs carry the facts of the default offline build (`make models` on a machine
with nothing in `weights/`); installing from another source rewrites them in the installed
configs, so the repository always says what it really serves.
"""

from __future__ import annotations

from pathlib import Path

from tritonclient.grpc import model_config_pb2 as mc

from export.graphs import GraphSpec
from export.manifest import read_manifest
from export.packaged import PackagedOnnxSpec
from export.spec import ModelSpec
from export.tfjs_package import TfjsPackageSpec
from triton_core.catalog import NO_WEIGHTS, WEIGHTS_KIND, WEIGHTS_LICENCE

Facts = dict[str, str]
GRAPH_LICENCE = "n/a (no weights)"


def default_facts(spec: ModelSpec | GraphSpec | PackagedOnnxSpec | TfjsPackageSpec) -> Facts:
    """What `--weights auto` installs when no official file is present."""
    if isinstance(spec, GraphSpec):
        return {WEIGHTS_KIND: NO_WEIGHTS, WEIGHTS_LICENCE: GRAPH_LICENCE}
    if isinstance(spec, PackagedOnnxSpec | TfjsPackageSpec):
        return {WEIGHTS_KIND: "package", WEIGHTS_LICENCE: spec.licence}
    if spec.package is not None:
        return {WEIGHTS_KIND: "package", WEIGHTS_LICENCE: spec.package.licence}
    return {WEIGHTS_KIND: "synthetic", WEIGHTS_LICENCE: spec.synthetic_licence}


def installed_facts(model_dir: Path) -> Facts | None:
    """The facts of what is installed in `model_dir`, from its manifest; None if none."""
    manifest = read_manifest(model_dir)
    if manifest is None:
        return None
    return {
        WEIGHTS_KIND: str(manifest.get("weights_kind")),
        WEIGHTS_LICENCE: str(manifest.get("weights_licence")),
    }


def has_facts(config: mc.ModelConfig, facts: Facts) -> bool:
    params = config.parameters
    return all(key in params and params[key].string_value == v for key, v in facts.items())


def apply_facts(config: mc.ModelConfig, facts: Facts) -> None:
    for key, value in facts.items():
        config.parameters[key].string_value = value
