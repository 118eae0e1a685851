"""Process-level settings for fast CPU training (train.py applies both: the first around each training epoch).

:func:`flush_denormals`: gradients through the zero-initialised gates start around 1e-7 and their products
(e.g. the KG slots' ``grad * z``, Adam's squared gradients) fall into float32's denormal range (< 1.2e-38),
where x86 arithmetic takes a microcode assist per element: one ``[P, d]`` product took 870 ms instead of
140 ms. Flushing them to zero changes no value above 1.2e-38.

:func:`keep_freed_memory`: glibc hands every allocation above its mmap threshold (at most 32 MB) to a fresh
``mmap`` and unmaps it on free, so each step's large temporaries (``[U+I, d]`` layers, ``[P, d]`` KG slots,
``[B, n]`` scores) are page-faulted in again, zero-filled by the kernel, every step: on a 1M-interaction
graph that made element-wise ops 4-6x slower than on reused memory (``benchmarks/results/speed.md``). With
mmap off and trimming off, freed blocks stay in the heap and the next step reuses them; the peak resident
set stays the peak of live memory plus fragmentation (checked at scale: ``benchmarks/speed.py``).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
from collections.abc import Iterator

import torch

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
DEFAULT_TRIM, DEFAULT_MMAP_MAX = 128 * 1024, 65536  # glibc's defaults


def _libc():
    if not sys.platform.startswith("linux") or os.environ.get("MMKGREC_KEEP_MEMORY", "1") == "0":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):  # musl and others: no mallopt
        return None
    return libc


@contextlib.contextmanager
def keep_freed_memory() -> Iterator[bool]:
    """While open, glibc's malloc keeps freed memory for reuse (no mmap, no trim); on exit the defaults come back
    and free memory is returned to the system (``malloc_trim``), so evaluation's differently sized temporaries do
    not pile up on the retained heap (LightGCN at scale: peak RSS 5.5 GB with the setting process-wide, the
    same as before without it when it covers the training epochs only). Yields ``False`` where it does not apply
    (not Linux / not glibc, or ``MMKGREC_KEEP_MEMORY=0``)."""
    libc = _libc()
    if libc is None:
        yield False
        return
    on = bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, -1))  # -1: SIZE_MAX
    try:
        yield on
    finally:
        libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
        libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM)
        libc.malloc_trim(0)


def flush_denormals() -> bool:
    """Flush float32 denormals to zero on this CPU (``torch.set_flush_denormal``); ``False`` where unsupported."""
    return bool(torch.set_flush_denormal(True))
