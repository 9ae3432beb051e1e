"""A least-recently-used map bounded by its entries *and* by the bytes its values hold.

A count alone does not bound memory here: one compiled grammar of a large schema holds tens of MiB
(xgrammar's precomputed masks of a 300 KB configuration schema: 67 MiB) where a small tool set's
holds well under one, so 256 large ones would hold ~17 GB. Each value is put with its size; the
oldest entries leave until both bounds hold. The newest entry always stays, even alone over the
byte bound: it is the one its caller is about to use.

Not thread-safe: its users hold their own lock.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SizedLRU(Generic[K, V]):
    def __init__(self, max_entries: int, max_bytes: int):
        if max_entries < 1 or max_bytes < 0:
            raise ValueError(f"max_entries must be >= 1 and max_bytes >= 0 (got {max_entries}, {max_bytes})")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self.bytes = 0  # the sizes of the values held, as they were put

    def get(self, key: K) -> V | None:
        """The value under `key`, now the most recently used; None if it is not held."""
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: K, value: V, size: int) -> list[K]:
        """Hold `value` under `key` (replacing what was there); returns the keys evicted for it."""
        old = self._items.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        self._items[key] = (value, size)
        self.bytes += size
        evicted = []
        while len(self._items) > 1 and (len(self._items) > self.max_entries or self.bytes > self.max_bytes):
            gone, (_, gone_size) = self._items.popitem(last=False)
            self.bytes -= gone_size
            evicted.append(gone)
        return evicted

    def values(self) -> list[V]:
        """The values held, least recently used first."""
        return [value for value, _ in self._items.values()]

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)


def sized_lru_cache(max_entries: int, max_bytes: int, size: Callable[[str, str], int]) -> Callable[[Callable[[str], str]], Callable[[str], str]]:
    """`functools.lru_cache` for a function of one string to a string, bounded by `size(arg,
    result)` bytes as well as by entries; thread-safe, with `cache_clear()`."""
    def wrap(fn: Callable[[str], str]) -> Callable[[str], str]:
        cache: SizedLRU[str, str] = SizedLRU(max_entries, max_bytes)
        lock = threading.Lock()

        @functools.wraps(fn)
        def cached(arg: str) -> str:
            with lock:
                hit = cache.get(arg)
            if hit is not None:
                return hit
            result = fn(arg)  # outside the lock: two threads may compute the same one, never wait on each other
            with lock:
                cache.put(arg, result, size(arg, result))
            return result

        def cache_clear() -> None:
            with lock:
                cache.clear()

        cached.cache_clear = cache_clear  # type: ignore[attr-defined]
        cached.cache = cache  # type: ignore[attr-defined]
        return cached

    return wrap
