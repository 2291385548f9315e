"""Triton datatype names and numpy dtypes, both ways, for the fixed-size types Facet sends."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import DTypeLike

_DATATYPES: dict[np.dtype[Any], str] = {
    np.dtype(np.bool_): "BOOL",
    np.dtype(np.uint8): "UINT8",
    np.dtype(np.uint16): "UINT16",
    np.dtype(np.uint32): "UINT32",
    np.dtype(np.uint64): "UINT64",
    np.dtype(np.int8): "INT8",
    np.dtype(np.int16): "INT16",
    np.dtype(np.int32): "INT32",
    np.dtype(np.int64): "INT64",
    np.dtype(np.float16): "FP16",
    np.dtype(np.float32): "FP32",
    np.dtype(np.float64): "FP64",
}
_NUMPY_TYPES = {datatype: dtype for dtype, datatype in _DATATYPES.items()}


def triton_datatype(dtype: DTypeLike) -> str:
    """Return Triton's datatype name for a numpy dtype; TypeError for one Triton cannot take.

    Non-native byte order is refused too: Triton reads tensors as little-endian bytes.
    """
    if np.dtype(dtype) == np.dtype(np.object_):
        return "BYTES"  # strings: arrays of bytes objects, as tritonclient serialises them
    found = _DATATYPES.get(np.dtype(dtype))
    if found is None:
        raise TypeError(f"numpy dtype {np.dtype(dtype)!s} has no Triton datatype")
    return found


def numpy_dtype(datatype: str) -> np.dtype[Any]:
    """Return the numpy dtype for a Triton datatype name; TypeError for BYTES and the like."""
    found = _NUMPY_TYPES.get(datatype)
    if found is None:
        raise TypeError(f"Triton datatype {datatype!r} has no fixed-size numpy dtype")
    return found
