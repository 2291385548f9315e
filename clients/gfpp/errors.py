"""The `gfpp` layer's own errors, beside the clients' FacetClientError hierarchy (which every
server failure raises). They subclass what the seed raises in the same places, so existing
`except KeyError` / `except ImportError` code keeps working."""

from __future__ import annotations


class UnknownBackendError(KeyError):
    """`get(name)` for a name neither the seed nor Facet knows."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


class BackendUnavailableError(ImportError):
    """`get(name)` for a backend the seed knows but a Facet server does not serve."""


class UnknownWeightError(KeyError):
    """`ensure_weight(name)` for a weight name neither the seed nor Facet knows."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class SyntheticWeightsWarning(UserWarning):
    """The server runs a model on synthetic weights: its outputs are not meaningful."""
