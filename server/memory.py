"""The server process's memory: what it holds now, handing freed large blocks back to the OS, and
keeping start-up's objects out of the garbage collector's walks."""

from __future__ import annotations

import ctypes
import gc
import os
import sys

MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value


def resident_bytes() -> int | None:
    """The process's resident memory now (Linux /proc; None where there is none)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def return_freed_blocks() -> bool:
    """Fix glibc's mmap threshold (-> True where it was set).

    glibc raises the threshold each time a block above it is freed (up to 32 MB), so that later
    blocks of that size come from the heap, which keeps them after `free`. Under load the batch's
    tensors (KV cache, logits of 16 rows x the vocabulary) then ratcheted the server's resident
    memory up in 64 MB steps: +20 % from the 100th to the 1,000th request of `scripts/soak.py`,
    flat (-0.3 %) with the threshold fixed at 128 KiB (a threshold fixed at 32 MB still grew 19 %).
    A fixed threshold keeps large blocks in their own mappings, returned to the OS when freed; the
    cost is a fresh mapping (page faults) per large tensor: the soak's wall time was 136-152 s
    against 109-115 s without it (two runs each, 2 shared CPU cores, demo model). Left alone where
    the user set MALLOC_MMAP_THRESHOLD_ (set it to choose the other trade-off).
    """
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl has no such threshold)
        return False
    m_mmap_threshold = -3
    return bool(libc.mallopt(m_mmap_threshold, MMAP_THRESHOLD))


def freeze_start_up_heap() -> int:
    """Put every object alive after start-up out of the garbage collector's reach (`gc.freeze`);
    -> how many there are.

    A full collection walks every object it tracks. After start-up those are ~230,000 (torch's,
    transformers' and the tokenizer's modules and tables, on the demo model), 0.1 s a walk on this
    project's 2-core machine, and they live as long as the process: walking them finds nothing. A
    large schema's compile allocates enough to set off one or two full collections (measured: the
    rule merge of a 300 KB schema's grammar took 0.08 s or 0.22 s, as a collection fell in it or
    not), and so can a long decode. Frozen, a collection walks only what was made since. Garbage
    is collected first, so that nothing collectable is frozen.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
