"""Model facts as Triton states them: batch limit, tensor names and shapes from each model's
config, and the weight facts (source kind, licence) that the export writes into the config's
`parameters`. The gateway and the clients read these instead of re-typing them.

Composite models carry no weights of their own: an ensemble's facts come from its steps, and a
Python (BLS) model names the models it calls in its `composed_of` parameter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tritonclient.grpc import model_config_pb2 as mc

# Config parameter keys written by the export (export/triton_config.py renders them).
WEIGHTS_KIND = "weights_kind"
WEIGHTS_LICENCE = "weights_licence"
COMPOSED_OF = "composed_of"
NO_WEIGHTS = "none"
SYNTHETIC = "synthetic"
SYNTHETIC_WARNING = "synthetic weights: outputs are not meaningful"


@dataclass(frozen=True)
class TensorFacts:
    name: str
    datatype: str  # Triton's name without the TYPE_ prefix: "UINT8", "FP32"
    dims: tuple[int, ...]  # without the batch axis; -1 marks a dynamic axis


@dataclass(frozen=True)
class ModelFacts:
    name: str
    max_batch_size: int  # 0: the model takes no batch axis
    inputs: tuple[TensorFacts, ...]
    outputs: tuple[TensorFacts, ...]
    weights_kind: str | None  # None: the config does not say (composite or hand-written)
    licence: str | None
    components: tuple[str, ...]  # ensemble steps or the models a BLS model calls
    parameters: Mapping[str, str]
    # Where the model's own computation runs, in execution-provider words (cpu, openvino,
    # cuda, tensorrt); None for composites (ensembles, BLS), whose components say.
    execution: str | None = None

    def input(self, name: str) -> TensorFacts:
        return _named(self.inputs, name, self.name, "input")

    def output(self, name: str) -> TensorFacts:
        return _named(self.outputs, name, self.name, "output")


@dataclass(frozen=True)
class WeightFacts:
    """The weights behind a model, its components' included."""

    kind: str  # official, package, synthetic, none, unknown, or several joined with "+"
    licences: tuple[str, ...]
    synthetic_models: tuple[str, ...]  # the models in it whose own weights are synthetic

    @property
    def synthetic(self) -> bool:
        return bool(self.synthetic_models)

    @property
    def warning(self) -> str | None:
        if not self.synthetic:
            return None
        return f"{', '.join(self.synthetic_models)}: {SYNTHETIC_WARNING}"


def _named(tensors: Iterable[TensorFacts], name: str, model: str, role: str) -> TensorFacts:
    for tensor in tensors:
        if tensor.name == name:
            return tensor
    raise KeyError(f"model '{model}' has no {role} '{name}'")


def _tensor(name: str, data_type: int, dims: Iterable[int]) -> TensorFacts:
    datatype = mc.DataType.Name(data_type).removeprefix("TYPE_")
    return TensorFacts(name, datatype, tuple(int(d) for d in dims))


def facts_from_config(config: mc.ModelConfig) -> ModelFacts:
    """Read one model's facts from the ModelConfig Triton serves (or a parsed config.pbtxt)."""
    parameters = {key: value.string_value for key, value in config.parameters.items()}
    steps = tuple(step.model_name for step in config.ensemble_scheduling.step)
    called = tuple(n for n in parameters.get(COMPOSED_OF, "").split(",") if n)
    return ModelFacts(
        name=config.name,
        max_batch_size=int(config.max_batch_size),
        inputs=tuple(_tensor(t.name, t.data_type, t.dims) for t in config.input),
        outputs=tuple(_tensor(t.name, t.data_type, t.dims) for t in config.output),
        weights_kind=parameters.get(WEIGHTS_KIND),
        licence=parameters.get(WEIGHTS_LICENCE),
        components=steps or called,
        parameters=parameters,
        execution=execution_of(config),
    )


# The CPU backends this project serves with, by the runtime they run models on.
CPU_BACKENDS = {"facet_ort": "cpu", "onnxruntime": "cpu", "facet_openvino": "openvino"}


def execution_of(config: mc.ModelConfig) -> str | None:
    """The execution provider a model config asks Triton for (None for ensembles and BLS)."""
    runtime = config.backend or config.platform
    if runtime in ("ensemble", "python"):
        return None
    if runtime == "tensorrt_plan":
        return "tensorrt"
    on_gpu = any(group.kind == mc.ModelInstanceGroup.KIND_GPU for group in config.instance_group)
    if runtime in ("onnxruntime_onnx", "onnxruntime") and on_gpu:
        accelerators = config.optimization.execution_accelerators.gpu_execution_accelerator
        return "tensorrt" if any(a.name == "tensorrt" for a in accelerators) else "cuda"
    return CPU_BACKENDS.get(runtime, "cpu" if not on_gpu else "cuda")


class ModelCatalog:
    """An immutable snapshot of model facts; build a new one to refresh.

    `models` are the ready models (their configs read); `listed` names every model Triton's
    repository index had, in any state, so "not installed" and "not ready yet" stay apart.
    """

    def __init__(self, models: Iterable[ModelFacts] = (), listed: Iterable[str] = ()) -> None:
        self._models = {model.name: model for model in models}
        self._listed = frozenset(listed) | frozenset(self._models)

    def __contains__(self, name: object) -> bool:
        return name in self._models

    def is_installed(self, name: str) -> bool:
        """In Triton's repository, ready or not."""
        return name in self._listed

    def get(self, name: str) -> ModelFacts | None:
        return self._models.get(name)

    def with_model(self, facts: ModelFacts) -> ModelCatalog:
        """A new catalog with `facts` added or replaced."""
        kept = [m for n, m in self._models.items() if n != facts.name]
        return ModelCatalog([*kept, facts], self._listed)

    def names(self) -> list[str]:
        return sorted(self._models)

    def executions(self, name: str) -> list[str]:
        """The execution providers `name` and everything it is composed of run on, sorted."""
        found: set[str] = set()
        pending, seen = [name], set()
        while pending:
            model = pending.pop()
            facts = self._models.get(model)
            if model in seen or facts is None:
                continue
            seen.add(model)
            if facts.execution is not None:
                found.add(facts.execution)
            pending.extend(facts.components)
        return sorted(found)

    def weights(self, name: str) -> WeightFacts:
        """The weight facts of `name` and everything it is composed of; a model the catalog
        does not know counts as 'unknown' (never as real)."""
        kinds: dict[str, str] = {}
        licences: list[str] = []
        self._collect(name, kinds, licences, seen=set())
        weighted = {model: kind for model, kind in kinds.items() if kind != NO_WEIGHTS}
        distinct = sorted(set(weighted.values()))
        synthetic = tuple(sorted(m for m, kind in weighted.items() if kind == SYNTHETIC))
        return WeightFacts(
            kind="+".join(distinct) if distinct else NO_WEIGHTS,
            licences=tuple(dict.fromkeys(licences)),
            synthetic_models=synthetic,
        )

    def _collect(
        self, name: str, kinds: dict[str, str], licences: list[str], seen: set[str]
    ) -> None:
        if name in seen:
            return
        seen.add(name)
        facts = self._models.get(name)
        if facts is None:
            kinds[name] = "unknown"
            return
        if facts.weights_kind is not None:
            kinds[name] = facts.weights_kind
            if facts.licence and facts.weights_kind != NO_WEIGHTS:
                licences.append(facts.licence)
        elif not facts.components:
            kinds[name] = "unknown"
        for component in facts.components:
            self._collect(component, kinds, licences, seen)
