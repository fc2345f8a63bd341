"""Keep glibc's allocator from handing large tensors back to the kernel after every use.

A Conv4 meta-iteration on the CPU allocates and frees the same multi-megabyte activation tensors
thousands of times. glibc serves blocks above its mmap threshold with fresh ``mmap`` pages and
trims freed heap memory back to the kernel, so every such tensor costs page faults (the kernel
zeroing each new page) and system time. Raising the mmap threshold to its maximum (32 MiB) and
never trimming keeps those blocks in the process for reuse. It is the runtime equivalent of
starting Python with ``MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=17179869184`` (see
``mallopt(3)``); the measured effect is in benchmarks/RESULTS.md, section "throughput".

The price: memory freed by torch stays with the process (its peak is unchanged), which is what a
training run wants anyway.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import sys

M_TRIM_THRESHOLD = -1  # from glibc's <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's upper limit for M_MMAP_THRESHOLD on 64-bit
TRIM_THRESHOLD_NEVER = 2**31 - 1  # mallopt takes an int; 2 GiB of free heap is "never" here

_tuned = False


def tune_allocator() -> bool:
    """Tune glibc malloc for large, short-lived tensors; True if it was (or already is) tuned.

    A no-op returning False where the C library is not glibc (macOS, Windows, musl) or where
    ``mallopt`` refuses the settings. Safe to call more than once.
    """
    global _tuned
    if _tuned:
        return True
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success, 0 on error.
    _tuned = (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX) == 1
              and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_NEVER) == 1)
    return _tuned
