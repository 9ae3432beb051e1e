"""One tokenizer, many threads: one user at a time, and the text of token ids without it.

A Rust tokenizer (`tokenizers`, behind every fast Hugging Face tokenizer) refuses to be used by two
threads at once when one of them changes it ("Already borrowed", huggingface/tokenizers#537), and a
copy of a 128K vocabulary costs over a second and tens of MB. So a tokenizer that several threads
use (the server's request workers, its engine thread, the budget's closer) is reached through
`serial(tokenizer)`: every call runs under that tokenizer's one lock, so it has one user at a time.

The text of generated tokens, wanted at every step of every stream, does not go through it:
`TokenText` decodes from a table of each token's bytes (xgrammar's `TokenizerInfo.decoded_vocab`,
built once), with an incremental UTF-8 decoder; checked at start-up against the tokenizer's own
`decode` on random ids, and only a tokenizer whose decode differs (SentencePiece's leading-space
rule) falls back to windowed `decode` calls, as vLLM does.
"""

from __future__ import annotations

import codecs
import functools
import random
import threading
import weakref
from collections.abc import Sequence
from typing import Any

# In xgrammar's copy of the vocabulary (`compiler.marker_tokenizer_info`), special tokens (a
# dialect's markers, chat tokens) are spelled with this byte in front. No text rule can then
# produce them: JSON and Python strings never contain it, and free text excludes it. Only
# `Token(id)` at the grammar's structural positions can. Without this, a marker token (e.g.
# Kimi's <|tool_call_end|>) is legal *inside* an argument string, because xgrammar treats an added
# token as the text it decodes to.
MARKER_BYTE = b"\x01"  # a control character: JSON and Python strings never contain it raw


# Each tokenizer's one lock, for as long as the tokenizer lives. The registry holds locks, not
# wrappers: a wrapper holds its tokenizer, so a registry of weak keys with wrappers as values would
# keep every tokenizer for ever; and wrappers held only while they are used would let a caller that
# keeps just the lock (`with serial(t).lock:`) share it with nobody.
_LOCKS: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()
_SERIAL_LOCK = threading.Lock()


class SerialTokenizer:
    """A tokenizer whose method calls run one at a time (attributes are read as they are)."""

    def __init__(self, tokenizer: Any, lock: threading.RLock | None = None):
        self.wrapped = tokenizer
        self.lock = lock or threading.RLock()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.wrapped, name)
        if not callable(value):
            return value
        lock = self.lock

        @functools.wraps(value)
        def call(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return value(*args, **kwargs)

        return call

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return self.wrapped(*args, **kwargs)

    def __len__(self) -> int:
        return len(self.wrapped)


def serial(tokenizer: Any) -> SerialTokenizer:
    """A serialising wrapper of `tokenizer`: every wrapper of it shares its one lock."""
    if isinstance(tokenizer, SerialTokenizer):
        return tokenizer
    with _SERIAL_LOCK:
        try:
            lock = _LOCKS.get(tokenizer)
            if lock is None:
                lock = _LOCKS[tokenizer] = threading.RLock()
        except TypeError:  # not weakly referenceable: a lock of its own
            lock = None
    return SerialTokenizer(tokenizer, lock)


def decode(tokenizer: Any, ids: Sequence[int]) -> str:
    """The text of `ids` as the model wrote it (special tokens kept, no clean-up)."""
    return str(tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False))


class ForcedTokens:
    """The tokens a decoder may feed at once for text the grammar forces (jump-forward): the text
    tokenized as a whole, less its last piece, which the text after it may merge with into another
    token (retokenization at the boundary), so the model samples it. A last piece the tokenizer
    keeps whole whatever follows is fed too: an added token (a marker such as `</arg_value>`) that
    is matched before the text around it is split, and takes no whitespace after it (no `rstrip`)
    and needs no word boundary (not `single_word`). Without this, a forced run of markers (GLM-4.7's
    `</arg_key><arg_value>`) would always leave one forward pass to the model."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        added = getattr(tokenizer, "added_tokens_decoder", None) or {}
        self.whole = frozenset(i for i, t in added.items() if not getattr(t, "rstrip", True) and not getattr(t, "single_word", True))

    def __call__(self, text: str) -> list[int]:
        ids = list(self.tokenizer.encode(text, add_special_tokens=False))
        return ids if ids and ids[-1] in self.whole else ids[:-1]


class TokenText:
    """Token ids -> text for one tokenizer: `stream()` gives an incremental decoder per sequence,
    `text(id)` one token's text. Exact (the byte table agrees with `decode`) or windowed."""

    def __init__(self, tokenizer: Any, decoded_vocab: list[bytes], samples: int = 300, seed: int = 0):
        self.tokenizer = serial(tokenizer)
        self.table = list(decoded_vocab)
        self.exact = self._agrees(samples, seed)
        self._single: dict[int, str] = {}

    def _agrees(self, samples: int, seed: int) -> bool:
        rng = random.Random(seed)
        n = len(self.table)
        for _ in range(samples):
            ids = [rng.randrange(n) for _ in range(rng.randrange(1, 10))]
            if decode(self.tokenizer, ids) != b"".join(self.table[i] for i in ids).decode("utf-8", "replace"):
                return False
        return True

    def text(self, token_id: int) -> str:
        s = self._single.get(token_id)
        if s is None:
            if self.exact and 0 <= token_id < len(self.table):
                s = self.table[token_id].decode("utf-8", "replace")
            else:
                s = decode(self.tokenizer, [token_id])
            self._single[token_id] = s
        return s

    def stream(self) -> StreamDecoder:
        return ByteStream(self.table) if self.exact else WindowStream(self.tokenizer)


class StreamDecoder:
    """Text of a growing list of ids: `add(id)` returns the text that is certain now (a character
    split across tokens waits for its last byte); `flush()` the rest, at the end."""

    def add(self, token_id: int) -> str:
        raise NotImplementedError

    def flush(self) -> str:
        raise NotImplementedError


class ByteStream(StreamDecoder):
    def __init__(self, table: list[bytes]):
        self.table = table
        self.utf8 = codecs.getincrementaldecoder("utf-8")("replace")

    def add(self, token_id: int) -> str:
        return self.utf8.decode(self.table[token_id]) if 0 <= token_id < len(self.table) else ""

    def flush(self) -> str:
        return self.utf8.decode(b"", final=True)


class WindowStream(StreamDecoder):
    """vLLM's incremental detokenisation: decode the last few ids with some context before them,
    and keep what the context's own text does not already hold."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prefix = self.read = 0  # ids[prefix:read]: context already emitted

    def add(self, token_id: int) -> str:
        self.ids.append(token_id)
        before = decode(self.tokenizer, self.ids[self.prefix : self.read])
        after = decode(self.tokenizer, self.ids[self.prefix :])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.prefix, self.read = self.read, len(self.ids)
            return after[len(before) :]
        return ""

    def flush(self) -> str:
        before = decode(self.tokenizer, self.ids[self.prefix : self.read])
        after = decode(self.tokenizer, self.ids[self.prefix :])
        self.prefix = self.read = len(self.ids)
        return after[len(before) :] if after.startswith(before) else after
