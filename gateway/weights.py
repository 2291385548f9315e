"""What the served models are made of, as Triton's configs say (through the catalog), so health
output and every response that used a model can say when it runs on synthetic weights."""

from __future__ import annotations

from collections.abc import Iterable

from triton_core.catalog import SYNTHETIC_WARNING, ModelCatalog


def describe_model(catalog: ModelCatalog, served: str) -> dict[str, object]:
    """Health's entry for one served model (an ensemble or a BLS model included)."""
    facts = catalog.weights(served)
    info: dict[str, object] = {
        "installed": catalog.is_installed(served),  # in Triton's repository, ready or not
        "weights": facts.kind,
        "synthetic": facts.synthetic,
        "licence": "; ".join(facts.licences) or None,
    }
    if facts.synthetic:
        info["warning"] = f"{', '.join(facts.synthetic_models)}: {SYNTHETIC_WARNING}"
    return info


def synthetic_in(catalog: ModelCatalog, served: Iterable[str]) -> list[str]:
    """The models with synthetic weights behind any of `served`, sorted, each once."""
    found = {name for model in served for name in catalog.weights(model).synthetic_models}
    return sorted(found)


def synthetic_warning(models: Iterable[str]) -> str | None:
    """The warning put on a response or job that used `models` (None when there are none)."""
    names = list(models)
    return f"{', '.join(names)}: {SYNTHETIC_WARNING}" if names else None
