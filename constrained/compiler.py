"""Compile request grammars for one tokenizer, cached by content.

`TokenizerInfo` takes ~0.5 s to build for a 129K vocabulary, so it is built once per tokenizer.
Compiled grammars are cached under (dialect, tools, options): a repeated request costs a dict lookup.

xgrammar's compiler also keeps the token masks of the rules it has compiled, and reuses them for a
*different* grammar with the same rules (every JSON string, number, object...). A first grammar
costs 20-50 ms on a 129K vocabulary, later new ones 2-10 ms, so `GrammarCache.warm` compiles a
grammar with every JSON value type at start-up. That cache is bounded by `cache_limit_bytes`.

A grammar whose text reaches `lazy.LAZY_FROM_CHARS` (a large schema's) is served by llguidance
instead, with masks computed per token (`constrained.lazy`): its compile is a fraction of
xgrammar's. The translation keeps the language exactly or refuses, and a refused grammar stays
with xgrammar.

xgrammar 0.2.8 hashes a rule for that cache without the ids of its `Token` edges (a dialect's
markers that are one token), so a rule that differs from an earlier grammar's only in a token id
would be given the earlier rule's masks. `grammar.token_element` writes each marker with a dead
alternative that spells its id, which makes the hash differ, so every grammar can use the cache.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import marshal
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import xgrammar as xgr

from .budget import Closer, margin_for, token_lengths
from .dialect import Dialect
from .grammar import GrammarOptions, build_ebnf
from .guards import matcher as guarded_matcher
from .lark import NotTranslatable, to_lark
from .lazy import LAZY_FROM_CHARS, LazyGrammar, llguidance_tokenizer
from .lru import SizedLRU
from .tokenizer import MARKER_BYTE, ForcedTokens, serial
from .types import GRAMMAR_CACHE_BYTES, Tool, as_tools

log = logging.getLogger("constrained")


def special_token_ids(vocab: Mapping[str, int], markers: Sequence[str]) -> dict[str, int]:
    """Markers that the vocabulary has as ONE token (else the grammar spells them as text)."""
    return {m: vocab[m] for m in markers if m in vocab}


def never_text_ids(tokenizer: Any, marker_ids: Iterable[int]) -> list[int]:
    """Tokens no text rule may produce: the dialect's marker tokens and every special added token
    (chat tokens such as <|im_end|>). Stop tokens are left to the matcher."""
    special = {i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if getattr(t, "special", False)}
    special |= set(getattr(tokenizer, "all_special_ids", []))
    special |= set(marker_ids)
    stops = set(eos_token_ids(tokenizer))
    return sorted(i for i in special if i not in stops)


def marker_tokenizer_info(info: xgr.TokenizerInfo, marker_ids: Sequence[int]) -> xgr.TokenizerInfo:
    if not marker_ids:
        return info
    vocab = [bytes(b) for b in info.decoded_vocab]
    markers = set(marker_ids)
    for i, b in enumerate(vocab):
        if i in markers:
            vocab[i] = MARKER_BYTE + b
        elif MARKER_BYTE in b:
            # never text anyway (no rule writes the byte); spelled so that no token writes two
            # in a row, which begins the dead alternative of `grammar.token_element`
            vocab[i] = b.replace(MARKER_BYTE, MARKER_BYTE + b"\x02")
    return xgr.TokenizerInfo(
        vocab, xgr.VocabType.RAW, vocab_size=info.vocab_size, stop_token_ids=info.stop_token_ids, add_prefix_space=info.add_prefix_space
    )


def eos_token_ids(tokenizer: Any, model: Any = None) -> list[int]:
    ids = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if ids is None:
        ids = tokenizer.eos_token_id
    return [ids] if isinstance(ids, int) else list(ids or [])


# A tool whose arguments use every JSON value type: compiling it fills xgrammar's rule cache. Its
# enum with a sibling keyword loads the literal checker (jsonschema: ~45 ms to import) now, not
# in the first request that has one.
WARM_UP_PARAMETERS: dict = {"type": "object", "properties": {
    "s": {"type": "string"}, "n": {"type": "number"}, "i": {"type": "integer"}, "b": {"type": "boolean"},
    "z": {"type": "null"}, "a": {"type": "array"}, "o": {"type": "object"}, "x": {}, "e": {"type": "string", "enum": ["e"]},
}}
WARM_UP_TOOL = Tool("warm_up", WARM_UP_PARAMETERS)


def compile_grammar(compiler: xgr.GrammarCompiler, grammar: xgr.Grammar, uncached: Callable[[], xgr.GrammarCompiler]) -> xgr.CompiledGrammar:
    """``compiler.compile_grammar``, retried without xgrammar's cache where its cross-grammar rule
    hashing fails (xgrammar 0.2.8: "Check failed: per_rule_fsm_hashes[ref_rule_id].has_value()",
    e.g. a bounded pattern property; the check upstream reports in mlc-ai/xgrammar PRs #647, #809)."""
    try:
        return compiler.compile_grammar(grammar)
    except RuntimeError as err:
        if "per_rule_fsm_hashes" not in str(err):
            raise
        return uncached().compile_grammar(grammar)


# what a request's grammar compiles to: xgrammar's, or llguidance's for a large grammar
Compiled = xgr.CompiledGrammar | LazyGrammar


@dataclass(frozen=True)
class CompileResult:
    """A compiled grammar, and what getting it cost: a cache hit, or the seconds it took."""

    grammar: Compiled
    cache_hit: bool
    seconds: float
    key: bytes = b""  # what the cache files it under


@dataclass
class CompileStats:
    compiles: int = 0
    cache_hits: int = 0
    compile_seconds: float = 0.0
    lazy_compiles: int = 0  # of `compiles`, those served by llguidance (constrained.lazy)


def held_bytes(compiled: Compiled) -> int:
    """About what a compiled grammar holds in memory: xgrammar's own count, or llguidance's estimate."""
    return compiled.memory_bytes if isinstance(compiled, LazyGrammar) else int(compiled.memory_size_bytes)


class GrammarCache:
    """Per-tokenizer compilers (one per dialect marker set) with a content-keyed LRU of grammars,
    bounded by entries and by the bytes the grammars hold (`max_bytes`, `constrained.lru`)."""

    def __init__(
        self, tokenizer: Any, vocab_size: int | None = None, max_entries: int = 256, max_threads: int = 8,
        cache_limit_bytes: int = 512 * 1024 * 1024, lazy_from_chars: int | None = LAZY_FROM_CHARS,
        max_bytes: int = GRAMMAR_CACHE_BYTES,
    ):
        self.tokenizer = tokenizer
        # bound of each xgrammar compiler's own cache: without one it grows with every new tool set
        self.cache_limit_bytes = cache_limit_bytes
        self.vocab_size = vocab_size or len(tokenizer)
        self.info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=self.vocab_size)
        self.max_threads = max_threads
        # grammar text from which llguidance serves it (None: xgrammar for every grammar)
        self.lazy_from_chars = lazy_from_chars
        self._cache: SizedLRU[bytes, Compiled] = SizedLRU(max_entries, max_bytes)
        self._lock = threading.RLock()
        self._compilers: dict[tuple[tuple[int, ...], bool], xgr.GrammarCompiler] = {}
        # per dialect marker set: (marker -> token id, never-text token ids that key its compilers).
        # get_vocab() alone costs ~90 ms on a 129K vocabulary, so it is read once here rather than
        # on every compile.
        self._dialects: dict[tuple[str, ...], tuple[dict[str, int], tuple[int, ...]]] = {}
        self.compiler = self.compiler_for(())
        self.stats = CompileStats()
        self._closers: dict[tuple, Closer] = {}
        self._token_chars: Any = None
        # budget zone margins (constrained.budget.margin_for) by grammar key and stop tokens,
        # dropped with their grammar: one closing plan per grammar, whoever asks
        self._margins: dict[bytes, dict[tuple[int, ...], int]] = {}

    def compiler_for(self, marker_ids: Sequence[int], *, cached: bool = True) -> xgr.GrammarCompiler:
        """The compiler for a set of never-text tokens; ``cached=False``: its twin without
        xgrammar's cache (``compile_grammar``'s fallback), made the first time it is needed."""
        key = (tuple(sorted(marker_ids)), cached)
        with self._lock:
            if key not in self._compilers:
                info = marker_tokenizer_info(self.info, key[0])
                self._compilers[key] = xgr.GrammarCompiler(
                    info, max_threads=self.max_threads, cache_enabled=cached, cache_limit_bytes=self.cache_limit_bytes
                )
            return self._compilers[key]

    def _dialect(self, dialect: Dialect) -> tuple[dict[str, int], tuple[int, ...]]:
        with self._lock:
            if dialect.special_tokens not in self._dialects:
                ids = special_token_ids(serial(self.tokenizer).get_vocab(), dialect.special_tokens)
                markers = tuple(sorted(never_text_ids(self.tokenizer, ids.values())))
                self.compiler_for(markers)  # its TokenizerInfo copy: built here, once, not in a timed compile
                self._dialects[dialect.special_tokens] = (ids, markers)
            return self._dialects[dialect.special_tokens]

    def _compile(self, dialect: Dialect, tools: Sequence[Tool], options: GrammarOptions, ebnf: str | None = None, lazy: bool | None = None) -> Compiled:
        return self._compile_ebnf(dialect, ebnf if ebnf is not None else self.ebnf(dialect, tools, options), lazy=lazy)

    def _compile_ebnf(self, dialect: Dialect, ebnf: str, *, lazy: bool | None = None) -> Compiled:
        if lazy or (lazy is None and self.lazy_sized(len(ebnf))):
            served = self._lazy(ebnf)
            if served is not None:
                return served
        markers = self._dialect(dialect)[1]
        grammar = xgr.Grammar.from_ebnf(ebnf)
        return compile_grammar(self.compiler_for(markers), grammar, lambda: self.compiler_for(markers, cached=False))

    def lazy_sized(self, chars: int) -> bool:
        """Whether grammar text of this size goes to llguidance (when it translates)."""
        return self.lazy_from_chars is not None and chars >= self.lazy_from_chars

    def _lazy(self, ebnf: str) -> LazyGrammar | None:
        """The grammar in llguidance; None where the translation refuses it or llguidance cannot
        read this tokenizer (xgrammar then serves it)."""
        if self.llguidance_tokenizer is None:
            return None
        try:
            grammar = LazyGrammar.build(to_lark(ebnf), self.llguidance_tokenizer, self.info.stop_token_ids, self.vocab_size)
        except NotTranslatable:
            return None
        except ValueError as err:  # llguidance refused the translation (a size limit): xgrammar's, then
            log.warning("constrained: llguidance refused a %d-character grammar, compiling it with xgrammar: %s", len(ebnf), err)
            return None
        with self._lock:
            self.stats.lazy_compiles += 1
        return grammar

    @functools.cached_property
    def llguidance_tokenizer(self) -> Any:
        """llguidance's view of the tokenizer for the lazy route (~1 s on a 129K vocabulary: once,
        at `warm` or the first large grammar); None where it cannot be built."""
        return llguidance_tokenizer(self.tokenizer, self.vocab_size, self.info.stop_token_ids)

    def compile_ebnf(self, dialect: Dialect, ebnf: str, *, lazy: bool | None = None) -> CompileResult:
        """A grammar `build_ebnf` wrote elsewhere (another process: vLLM's API server), compiled
        with `dialect`'s never-text tokens; cached by its text. `lazy` as for `compile`."""
        key = b"ebnf" + hashlib.blake2b(f"{dialect.name}\n{lazy}\n{ebnf}".encode(), digest_size=20).digest()
        return self._cached(key, lambda: self._compile_ebnf(dialect, ebnf, lazy=lazy))

    def warm(self, dialect: Dialect) -> float:
        """Compile a grammar with every JSON value type for `dialect`, so that the first request's
        grammar finds those rules' masks already computed. Returns the seconds it took."""
        t0 = time.perf_counter()
        self._compile(dialect, [WARM_UP_TOOL], GrammarOptions())
        if self.lazy_from_chars is not None and self.llguidance_tokenizer is None:  # built now, not in the first large grammar's compile
            log.warning("constrained: llguidance cannot read this tokenizer (or is not installed): large grammars will be "
                        "compiled by xgrammar, which takes seconds for a large schema")
        return time.perf_counter() - t0

    def closer(self, dialect: Dialect, stop_ids: Sequence[int]) -> Closer:
        """The budget's yardstick for this tokenizer and dialect (constrained.budget), made once."""
        key = (dialect.name, dialect.special_tokens, tuple(stop_ids))
        with self._lock:
            if key not in self._closers:
                if self._token_chars is None:
                    specials = never_text_ids(self.tokenizer, ())
                    self._token_chars = token_lengths(self.decoded_vocab, self.vocab_size, specials)
                # the closer encodes on the engine's thread and on request threads: one user at a time
                self._closers[key] = Closer(serial(self.tokenizer), dialect, self.vocab_size, stop_ids, self._dialect(dialect)[0], self._token_chars)
            return self._closers[key]

    @functools.cached_property
    def forced_tokens(self) -> ForcedTokens:
        """How jump-forward tokenizes forced text with this tokenizer (reading its added tokens
        takes ~0.7 ms on the demo's 129K vocabulary: once per tokenizer, not per `generate`)."""
        return ForcedTokens(serial(self.tokenizer))

    @functools.cached_property
    def decoded_vocab(self) -> list[bytes]:
        """Each token's bytes (xgrammar's `decoded_vocab` converts the whole list on every read:
        ~2 s for 129K tokens)."""
        return [bytes(b) for b in self.info.decoded_vocab]

    def ebnf(self, dialect: Dialect, tools: Sequence[Tool | Mapping] | None, options: GrammarOptions) -> str:
        return build_ebnf(dialect, as_tools(tools), options, self._dialect(dialect)[0])

    def key(self, dialect: Dialect, tools: Sequence[Tool | Mapping] | None, options: GrammarOptions) -> bytes:
        """What the cache files this request's grammar under."""
        return _cache_key(dialect, as_tools(tools), options)

    def held(self) -> tuple[int, int]:
        """The grammars cached, and the bytes they hold (`held_bytes`)."""
        with self._lock:
            return len(self._cache), self._cache.bytes

    def cached(self, key: bytes) -> CompileResult | None:
        """The grammar filed under `key`, if it was compiled before (nothing is compiled)."""
        with self._lock:
            hit = self._cache.get(key)
            if hit is None:
                return None
            self.stats.cache_hits += 1
            return CompileResult(hit, True, 0.0, key)

    def compile(
        self, dialect: Dialect, tools: Sequence[Tool | Mapping] | None, options: GrammarOptions, *, ebnf: str | None = None, lazy: bool | None = None,
    ) -> CompileResult:
        """The grammar for this request, from the cache when an equal request was compiled before.
        Raises ToolSpecError / UnsupportedSchemaError (with their context) for what cannot be served.
        `ebnf`: the request's grammar text when the caller built it already (`ebnf()`). `lazy`:
        None chooses by size (`lazy_from_chars`); True serves it by llguidance where it translates
        (`constrained.lazy`), False by xgrammar."""
        typed = as_tools(tools)
        key = _cache_key(dialect, typed, options) + (b"" if lazy is None else bytes([lazy]))
        return self._cached(key, lambda: self._compile(dialect, typed, options, ebnf, lazy))

    def _cached(self, key: bytes, compile_: Callable[[], Compiled]) -> CompileResult:
        hit = self.cached(key)
        if hit is not None:
            return hit
        t0 = time.perf_counter()
        compiled = compile_()
        elapsed = time.perf_counter() - t0
        with self._lock:
            for gone in self._cache.put(key, compiled, held_bytes(compiled)):
                self._margins.pop(gone, None)
            self.stats.compiles += 1
            self.stats.compile_seconds += elapsed
        return CompileResult(compiled, False, elapsed, key)

    def margin(self, dialect: Dialect, compiled: CompileResult, stop_ids: Sequence[int]) -> int:
        """The token budget's zone margin for a grammar of this cache (constrained.budget), worked
        out once per grammar and stop set."""
        stops = tuple(stop_ids)
        with self._lock:
            known = self._margins.get(compiled.key, {}).get(stops)
        if known is None:
            matcher = guarded_matcher(compiled.grammar, override_stop_tokens=list(stops) if stops else None)
            known = margin_for(self.closer(dialect, stops), matcher, dialect)
            with self._lock:
                if compiled.key in self._cache:
                    self._margins.setdefault(compiled.key, {})[stops] = known
        return known


def _cache_key(dialect: Dialect, tools: Sequence[Tool], options: GrammarOptions) -> bytes:
    """Digest of the request's grammar inputs: what the grammar depends on (names and parameters,
    not descriptions). marshal is ~4x faster than json.dumps on 100 tools and loads back to an
    equal value, so equal bytes mean equal inputs (version 2 writes no back-references, whose bytes
    would depend on reference counts). Equal inputs written differently (key order, 1 vs 1.0) only
    miss the cache. Other Mapping types go through JSON."""
    payload = [dialect.name, [(t.name, t.parameters) for t in tools], options.key()]
    try:
        data = marshal.dumps(payload, 2)
    except ValueError:
        data = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.blake2b(data, digest_size=20).digest()


# The shared caches of the tokenizers used last. A cache holds its tokenizer, so a registry of weak
# keys would keep every one for ever; a process that works with many tokenizers (the test suite
# loads one per dialect, ~45) keeps this many caches (~160 MB each), the others dropped from here
# (whoever still holds one keeps using it; asking again builds a new one).
SHARED_CACHES_KEPT = 8
_CACHES: SizedLRU[Any, dict[int, GrammarCache]] = SizedLRU(SHARED_CACHES_KEPT, 2**62)
_CACHES_LOCK = threading.Lock()


def grammar_cache(tokenizer: Any, vocab_size: int | None = None) -> GrammarCache:
    """The shared cache of a tokenizer (one TokenizerInfo and compiler per tokenizer and vocab size)."""
    vocab_size = vocab_size or len(tokenizer)
    with _CACHES_LOCK:
        per_tok = _CACHES.get(tokenizer)
        if per_tok is None:
            per_tok = {}
            _CACHES.put(tokenizer, per_tok, 0)
        if vocab_size not in per_tok:
            per_tok[vocab_size] = GrammarCache(tokenizer, vocab_size)
        return per_tok[vocab_size]
