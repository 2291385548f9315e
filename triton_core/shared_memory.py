"""Layout pieces for Triton system shared memory, shared by the gateway's async client and the
user-facing sync client: where each tensor sits in a region, and a cleanup that never masks the
call's own outcome."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import tritonclient.utils.shared_memory as shm

from triton_core.datatypes import numpy_dtype

SHM_ALIGNMENT: Final = 64
# Triton drops its hold on a region only after it has sent the response that points into it, so
# an unregister right after the answer can hear "currently in use"; these pauses (about 5 s in
# all) wait that moment out without hiding a region that stays busy.
UNREGISTER_PAUSES_S: Final = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 1.0, 2.0)
_REGION_BUSY_TEXT: Final = "currently in use"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Slot:
    """Where one tensor lives inside a call's shared-memory region."""

    name: str
    offset: int
    nbytes: int


def align(offset: int) -> int:
    return -(-offset // SHM_ALIGNMENT) * SHM_ALIGNMENT


def plan_region(
    inputs: Mapping[str, npt.NDArray[Any]],
    outputs: Sequence[str],
    output_nbytes: Mapping[str, int],
    *,
    default_output_nbytes: int | None = None,
) -> tuple[list[Slot], list[Slot], int]:
    """Lay inputs, then room for outputs, 64-byte aligned, end to end in one region; return the
    input slots, the output slots and the region's size.

    An output without a size in `output_nbytes` gets `default_output_nbytes` (a sparse tmpfs
    region uses pages only where written), or, when that is None, no slot: it then comes back
    inside the gRPC answer.
    """
    offset = 0
    input_slots: list[Slot] = []
    output_slots: list[Slot] = []
    for name, array in inputs.items():
        input_slots.append(Slot(name, offset, array.nbytes))
        offset = align(offset + array.nbytes)
    for name in outputs:
        nbytes = output_nbytes.get(name, default_output_nbytes)
        if nbytes is None:
            continue
        if nbytes <= 0:
            raise ValueError(f"the room for output '{name}' must be positive, got {nbytes}")
        output_slots.append(Slot(name, offset, nbytes))
        offset = align(offset + nbytes)
    return input_slots, output_slots, max(offset, SHM_ALIGNMENT)


def is_region_busy(error: BaseException) -> bool:
    """Tell whether an unregister failed only because Triton still holds the region."""
    return _REGION_BUSY_TEXT in str(error).lower()


def destroy_region(handle: Any, region: str) -> None:
    """Unmap and unlink a region; a failure here must not hide the call's own outcome."""
    try:
        shm.destroy_shared_memory_region(handle)
    except (shm.SharedMemoryException, BufferError, OSError) as exc:
        log.warning("could not destroy shared memory region %s: %s", region, exc)


class RegionReadError(ValueError):
    """An output cannot be read from its region; each client maps this to its own error."""


def read_output(handle: Any, result: Any, slot: Slot, model: str) -> npt.NDArray[Any]:
    """Copy one output out of a call's region, which is destroyed as soon as the call returns."""
    tensor = result.get_output(slot.name)
    if tensor is None:
        raise RegionReadError(f"model '{model}' returned no output '{slot.name}'")
    try:
        dtype = numpy_dtype(tensor.datatype)
    except TypeError as exc:
        raise RegionReadError(f"output '{slot.name}' of '{model}': {exc}") from exc
    shape = [int(dim) for dim in tensor.shape]
    if int(np.prod(shape)) * dtype.itemsize > slot.nbytes:
        raise RegionReadError(f"output '{slot.name}' of '{model}' overflows its region")
    view = shm.get_contents_as_numpy(handle, dtype, shape, offset=slot.offset)
    return np.array(view, copy=True)
