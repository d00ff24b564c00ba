"""Pin NumPy's OpenBLAS to a number of threads while a benchmark runs (Linux; elsewhere a no-op that says so).

Finds the loaded OpenBLAS through ``/proc/self/maps`` and calls its ``openblas_set_num_threads``
(as threadpoolctl does), restoring the old count afterwards.
"""
from __future__ import annotations

import contextlib
import ctypes
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from qsmoe.errors import QsError

# OpenBLAS entry points, as exported by the builds NumPy ships (scipy-openblas, 64-bit ints) and by others.
_OPENBLAS_PREFIXES = ("scipy_", "")
_OPENBLAS_SUFFIXES = ("64_", "_64", "")


def _openblas_libraries() -> list[Path]:
    """Shared objects with 'openblas' in their name that this process has loaded (Linux only)."""
    np.ones((2, 2)) @ np.ones((2, 2))  # make sure NumPy's BLAS is loaded
    maps = Path("/proc/self/maps")
    if not maps.exists():
        return []
    paths = {line.split(maxsplit=5)[5] for line in maps.read_text().splitlines() if len(line.split(maxsplit=5)) == 6}
    return sorted(Path(p) for p in paths if "openblas" in Path(p).name.lower() and Path(p).is_file())


def _openblas_symbol(lib: ctypes.CDLL, name: str) -> Any:
    """``name`` (e.g. 'openblas_get_num_threads') under any known prefix/suffix, else None."""
    for prefix in _OPENBLAS_PREFIXES:
        for suffix in _OPENBLAS_SUFFIXES:
            func = getattr(lib, f"{prefix}{name}{suffix}", None)
            if func is not None:
                return func
    return None


@contextlib.contextmanager
def blas_threads(n_threads: int) -> Iterator[str]:
    """Run the block with NumPy's OpenBLAS limited to ``n_threads``; yields a sentence saying what was done.

    Finds the loaded OpenBLAS through ``/proc/self/maps`` and calls its
    ``openblas_set_num_threads`` (as threadpoolctl does), restoring the old count afterwards.
    Elsewhere (no OpenBLAS, or not Linux) the BLAS is left as it is and the sentence says so.
    """
    if isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1:
        raise QsError(f"must be a positive integer, got {n_threads!r}", field="n_threads")
    controls = []
    for path in _openblas_libraries():
        try:
            lib = ctypes.CDLL(str(path))
        except OSError:
            continue
        get, set_ = _openblas_symbol(lib, "openblas_get_num_threads"), _openblas_symbol(lib, "openblas_set_num_threads")
        if get is not None and set_ is not None:
            get.restype, set_.argtypes = ctypes.c_int, [ctypes.c_int]
            controls.append((get, set_, int(get())))
    if not controls:
        yield "the BLAS threads were left at the library's default (no OpenBLAS thread control was found)"
        return
    for _, set_, _ in controls:
        set_(n_threads)
    try:
        was = ", ".join(str(old) for _, _, old in controls)
        yield f"OpenBLAS was limited to {n_threads} thread{'s' if n_threads > 1 else ''} for the timings (its default here: {was})"
    finally:
        for _, set_, old in controls:
            set_(old)
