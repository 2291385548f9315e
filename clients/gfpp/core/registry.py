"""The seed's backend registry, answered by the server: `list_backends()` says which restorers
a Facet server really has; `get(name)` returns the class that restores with it.

`get` does not contact the server (the seed resolves classes without running them either);
the returned class's `prepare()` checks that the model is installed and ready.
"""

from __future__ import annotations

from collections.abc import Mapping

from clients.gfpp.errors import BackendUnavailableError, UnknownBackendError
from clients.gfpp.names import BACKEND_ALIASES, BACKENDS, EXPERIMENTAL_BACKENDS
from clients.gfpp.restorers.base import Restorer
from clients.gfpp.session import ServedModel, SessionSource, open_session


def list_backends(
    include_experimental: bool = False, *, server: SessionSource = None
) -> dict[str, bool]:
    """{backend: available} for the seed's backends, read from the server's model list.

    Raises a FacetClientError (UnavailableError when the server cannot be reached): an
    unreachable server is not a server without restorers.
    """
    with open_session(server) as session:
        served = session.served_models()
    return availability(served, include_experimental=include_experimental)


def availability(
    served: Mapping[str, ServedModel], *, include_experimental: bool = False
) -> dict[str, bool]:
    """A backend is available when the model serving it is installed on the server."""
    names = dict(BACKENDS)
    if include_experimental:
        names.update(EXPERIMENTAL_BACKENDS)
    return {
        name: model is not None and model in served and served[model].installed
        for name, model in names.items()
    }


def get(name: str) -> type[Restorer]:
    """The Restorer class for `name` (aliases as the seed's: `restoreformer`).

    UnknownBackendError (a KeyError) for a name the seed does not know; BackendUnavailableError
    (an ImportError) for one Facet does not serve.
    """
    canonical = BACKEND_ALIASES.get(name, name)
    known = {**BACKENDS, **EXPERIMENTAL_BACKENDS}
    if canonical not in known:
        raise UnknownBackendError(
            f"unknown backend {name!r}; the seed's backends are: {', '.join(sorted(known))}"
        )
    if known[canonical] is None:
        served = sorted(n for n, model in known.items() if model is not None)
        raise BackendUnavailableError(
            f"backend {name!r} is not served by Facet; Facet serves: {', '.join(served)}"
        )
    from clients.gfpp.restorers.gfpgan import FacetGFPGANRestorer

    return FacetGFPGANRestorer
