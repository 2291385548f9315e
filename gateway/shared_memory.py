"""Layout pieces for Triton system shared memory, shared by the gateway's async client and the
user-facing sync client: where each tensor sits in a region, and a cleanup that never masks the
call's own outcome."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

import tritonclient.utils.shared_memory as shm

SHM_ALIGNMENT: Final = 64

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Slot:
    """Where one tensor lives inside a call's shared-memory region."""

    name: str
    offset: int
    nbytes: int


def align(offset: int) -> int:
    return -(-offset // SHM_ALIGNMENT) * SHM_ALIGNMENT


def destroy_region(handle: Any, region: str) -> None:
    """Unmap and unlink a region; a failure here must not hide the call's own outcome."""
    try:
        shm.destroy_shared_memory_region(handle)
    except (shm.SharedMemoryException, BufferError, OSError) as exc:
        log.warning("could not destroy shared memory region %s: %s", region, exc)
