"""The seed's `ensure_weight(name)`, on Facet: nothing is downloaded. It checks that the server
has the model those weights are for, and says where its weights come from (Triton's configs
state the kind, e.g. official, package or synthetic, and the licence).

The answer unpacks as the seed's `(path, sha256)` pair: the served location and None (the
configs do not carry the files' hashes; each model's manifest.json on the server does).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass

from clients.errors import NotFoundError
from clients.gfpp.errors import SyntheticWeightsWarning, UnknownWeightError
from clients.gfpp.names import WEIGHTS
from clients.gfpp.session import ServedModel, SessionSource, open_session


@dataclass(frozen=True)
class WeightCheck:
    name: str  # the seed's weight name, e.g. GFPGANv1.4
    model: str  # the served model, e.g. gfpgan_v1_4
    location: str  # where it is served: transport, server address and model
    sha256: str | None
    served: ServedModel

    def __iter__(self) -> Iterator[str | None]:
        return iter((self.location, self.sha256))


def ensure_weight(
    model_name: str, *, no_download: bool = True, server: SessionSource = None
) -> WeightCheck:
    """Check the server serves `model_name` (a seed weight name, or a Facet model name).

    `no_download` is accepted for the seed's signature: nothing is ever downloaded. Raises
    UnknownWeightError (a KeyError) for a name neither knows, NotFoundError when the server
    does not have the model installed; warns SyntheticWeightsWarning when its weights are
    synthetic.
    """
    del no_download  # a Facet client never downloads weights
    model = model_for(model_name)
    with open_session(server) as session:
        served = session.served_models()
        where = session.server
    found = served.get(model)
    if found is None or not found.installed:
        raise NotFoundError(
            f"the Facet server at {where.url} does not serve {model_name} (model '{model}')"
        )
    if found.synthetic and found.warning:
        warnings.warn(found.warning, SyntheticWeightsWarning, stacklevel=2)
    location = f"{where.via}://{where.url.removeprefix('http://').removeprefix('https://')}/{model}"
    return WeightCheck(model_name, model, location, None, found)


def model_for(name: str) -> str:
    if name in WEIGHTS:
        model = WEIGHTS[name]
        if model is None:
            served = ", ".join(n for n, m in WEIGHTS.items() if m is not None)
            raise NotFoundError(f"Facet serves no model for {name}; it serves: {served}")
        return model
    if name in WEIGHTS.values():
        return name
    raise UnknownWeightError(
        f"unknown weight name {name!r}; known: {', '.join(WEIGHTS)} (or Facet model names: "
        f"{', '.join(sorted(m for m in WEIGHTS.values() if m))})"
    )
