"""One exception hierarchy for serving; the launcher and the CLI raise only these."""

from collections.abc import Sequence


class ServingError(Exception):
    """Base class: Triton could not be found, assembled, started or kept running."""


class TritonNotFoundError(ServingError):
    """Neither the pytriton wheel nor a `tritonserver` on PATH provides a usable install."""


class BackendAssemblyError(ServingError):
    """The backend directory handed to `--backend-directory` could not be built."""


class PortInUseError(ServingError):
    """A port the server was told to use is already bound by someone else."""


class TritonStartError(ServingError):
    """tritonserver exited or did not become ready; the message carries its log."""

    def __init__(self, reason: str, log_tail: str, error_lines: Sequence[str] = ()):
        self.reason = reason
        self.log_tail = log_tail
        self.error_lines = list(error_lines)
        parts = [reason]
        if self.error_lines:
            parts += ["--- errors reported by tritonserver ---", *self.error_lines]
        parts += ["--- last lines of the tritonserver log ---", log_tail]
        super().__init__("\n".join(parts))
