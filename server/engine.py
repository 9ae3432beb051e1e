"""The batching engine: one thread, continuous batching, one grammar per row.

Design (see server/README.md):
- Requests wait in a bounded queue (`max_queue`; `submit` raises `QueueFull` beyond it: the HTTP
  layer answers 429).
- One engine thread owns the model. Each step it (1) drops rows whose client went away,
  (2) runs one decode forward for the running rows (the token each sampled last step),
  (3) admits up to `max_batch - running` waiting requests and prefills them in one left-padded
  forward, then merges their KV cache into the running one (left padding, attention mask),
  (4) samples one token per row through the same decoding path as the logits processor:
  each row's `constrained.decoding.GrammarState` (the one place its matcher lives) goes to one
  `GrammarBatch`, which fills every row's mask in one batched call and applies it (rows without
  a grammar are free), then per-row temperature / top_p / seed sampling,
  (5) streams each row's token to its request, and drops finished rows from the cache.
  This is continuous batching: a new request joins the running batch at the next step.
- Sampling is inverse-CDF with one uniform number per row per step from the request's own
  `numpy` generator, so a seeded request gives the same tokens alone or in a batch (up to
  floating-point differences of batched matmuls).
- Columns of the KV cache that only hold left padding of rows that have left are trimmed.
- One row's failure is that row's alone: an exception in its grammar (mask, budget, accept,
  jump-forward) ends its request with an error, and the other rows go on. Only a failure of the
  shared forward pass ends every row of the step.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import xgrammar as xgr  # noqa: F401  (the type of GenerationRequest.grammar)

from constrained.budget import RowBudget
from constrained.decoding import GrammarBatch, GrammarState
from constrained.jump import left_padded
from constrained.tokenizer import ForcedTokens

log = logging.getLogger("constrained.server")

LOGPROB_FLOOR = -9999.0  # what a forbidden token's logprob is reported as (JSON has no -inf), as vLLM does


class QueueFull(Exception):
    pass


class EngineStopped(Exception):
    pass


@dataclass
class EngineConfig:
    max_batch: int = 16
    max_queue: int = 256
    # Continuous batching (admit into a running batch). False: admit only when the batch drains.
    continuous: bool = True
    # A bias added to every row's logits before the grammar mask (tests use it to make the random
    # demo model close its structures; the grammar alone still decides what is allowed).
    logits_bias: dict[int, float] | None = None
    # Added on a row's first step only (tests: make the random model choose between opening a
    # tool section and stopping, where the general bias would make it write text).
    first_token_bias: dict[int, float] | None = None
    # When set, a request without a seed is sampled with a seed derived from this and its prompt:
    # deterministic servers for tests and benchmarks. None: unseeded requests are random.
    default_seed: int | None = None
    # torch intra-op threads (process-wide, set when the engine starts); None leaves torch's
    # default. Small models on a few shared cores run several times faster with 1.
    torch_threads: int | None = None
    # Jump-forward: when a row's grammar forces the next text (markers, a call's name, JSON keys),
    # tokenize it and feed those tokens in the next forward instead of sampling them one by one.
    # Only tokens the matcher accepts are fed; the last token of the forced text is left to the
    # model so that the token boundary after it stays the model's choice.
    jump_forward: bool = True


class GenerationRequest:
    """One sequence to generate. Events are pushed to `sink` from the engine thread:
    ("token", token_id, logprob_entry | None) per step, then ("finish", reason, error | None)
    with reason stop | length | cancelled | error."""

    def __init__(
        self,
        prompt_ids: Sequence[int],
        *,
        max_tokens: int,
        grammar: xgr.CompiledGrammar | None = None,
        budget: RowBudget | None = None,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
        logit_bias: dict[int, float] | None = None,
        logprobs: int | None = None,
        sink: Callable[[tuple], None] | None = None,
    ):
        self.prompt_ids = list(prompt_ids)
        self.max_tokens = max_tokens
        self.grammar = grammar
        # budget-aware closing (constrained.budget): the row's output completes within max_tokens
        self.budget = budget
        self.temperature = temperature
        self.top_p = top_p
        self.seed = seed
        self.logit_bias = logit_bias or None
        self.logprobs = logprobs
        self.sink = sink
        self.cancelled = False
        self.finished = False
        self.submitted = time.perf_counter()
        self.first_token_at: float | None = None

    def cancel(self) -> None:
        self.cancelled = True

    def emit(self, event: tuple) -> None:
        if self.sink is not None:
            try:
                self.sink(event)
            except Exception:  # the client's loop is gone
                self.cancelled = True


class AsyncSink:
    """Bridges engine events into an asyncio queue on the caller's loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None):
        self.loop = loop or asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue()

    def __call__(self, event: tuple) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, event)

    async def get(self) -> tuple:
        return await self.queue.get()


class _Row:
    __slots__ = ("req", "grammar", "rng", "generated", "pending", "prompt_len", "bias_idx", "bias_val", "failed")

    def __init__(self, req: GenerationRequest, grammar: GrammarState | None, rng, device):
        self.req = req
        self.grammar = grammar  # None: a free row (no tools, completions)
        self.rng = rng
        self.generated = 0
        self.pending: list[int] = []  # tokens to feed next step: the one sampled (+ jumped ones)
        self.prompt_len = len(req.prompt_ids)
        self.bias_idx: torch.Tensor | None = None
        self.bias_val: torch.Tensor | None = None
        self.failed: str | None = None  # this row's grammar raised: it ends with this error
        if req.logit_bias:
            self.bias_idx = torch.tensor(list(req.logit_bias), dtype=torch.long, device=device)
            self.bias_val = torch.tensor(list(req.logit_bias.values()), dtype=torch.float32, device=device)


@dataclass
class EngineStats:
    requests_submitted: int = 0  # accepted into the queue (= finished + cancelled + queued + running)
    requests_admitted: int = 0
    requests_finished: int = 0
    requests_cancelled: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    steps: int = 0
    jump_forward_tokens: int = 0
    forward_seconds: float = 0.0
    prefill_seconds: float = 0.0
    mask_seconds: float = 0.0
    sample_seconds: float = 0.0
    errors: int = 0  # steps whose shared forward pass failed (every row of the step ended)
    row_errors: int = 0  # rows that failed alone (the others went on)


def derived_seed(base: int, prompt_ids: Sequence[int]) -> int:
    h = hashlib.sha256(f"{base}:{','.join(map(str, prompt_ids))}".encode()).digest()
    return int.from_bytes(h[:8], "little")


def _left_pad(t: torch.Tensor, n: int) -> torch.Tensor:
    """Pad a [B, H, T, D] cache tensor by n zero positions on the left of T."""
    return F.pad(t, (0, 0, n, 0)) if n else t


class Engine:
    def __init__(self, model: Any, tokenizer: Any, *, vocab_size: int, stop_token_ids: Sequence[int], max_context: int, config: EngineConfig | None = None):
        from transformers.cache_utils import DynamicLayer

        self._dynamic_layer = DynamicLayer
        self.model = model
        self.tokenizer = tokenizer
        self._forced_tokens = ForcedTokens(tokenizer)
        self.vocab_size = vocab_size
        self.stop_ids = list(stop_token_ids)
        self.stop_set = set(self.stop_ids)
        self.max_context = max_context
        self.config = config or EngineConfig()
        self.device = next(model.parameters()).device
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (self.stop_ids[0] if self.stop_ids else 0)
        self.bias_vec = self._bias_vector(self.config.logits_bias)
        self.first_bias_vec = self._bias_vector(self.config.first_token_bias)
        self.stats = EngineStats()
        self._cond = threading.Condition()
        self._waiting: collections.deque[GenerationRequest] = collections.deque()
        self._rows: list[_Row] = []
        # the running batch's KV cache and attention mask: set together at the first prefill,
        # cleared together when the batch drains (Any: both are None only while no row runs)
        self._cache: Any = None
        self._mask: Any = None
        self._masks = GrammarBatch(vocab_size, capacity=self.config.max_batch)
        self._stopping = False
        self._thread: threading.Thread | None = None

    def _bias_vector(self, bias: dict[int, float] | None) -> torch.Tensor | None:
        if not bias:
            return None
        vec = torch.zeros(self.vocab_size, dtype=torch.float32, device=self.device)
        for tid, val in bias.items():
            if 0 <= tid < self.vocab_size:
                vec[tid] += val
        return vec

    # ------------------------------------------------------------------------------ public API
    def start(self) -> Engine:
        if self.config.torch_threads:
            torch.set_num_threads(self.config.torch_threads)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="constrained-engine", daemon=True)
            self._thread.start()
        return self

    def shutdown(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def submit(self, req: GenerationRequest) -> GenerationRequest:
        if req.seed is None and self.config.default_seed is not None:
            req.seed = derived_seed(self.config.default_seed, req.prompt_ids)
        with self._cond:
            if self._stopping:
                raise EngineStopped("the engine is shutting down")
            if len(self._waiting) >= self.config.max_queue:
                raise QueueFull(f"server busy: {len(self._waiting)} requests are already waiting (max_queue={self.config.max_queue})")
            self._waiting.append(req)
            self.stats.requests_submitted += 1
            self._cond.notify()
        return req

    @property
    def queue_depth(self) -> int:
        return len(self._waiting)

    @property
    def running(self) -> int:
        return len(self._rows)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------------------ the loop
    def _run(self) -> None:
        torch.set_grad_enabled(False)
        while True:
            new = self._admit()
            if new is None:
                return
            try:
                with torch.inference_mode():
                    self._step(new)
            except Exception as err:  # never let one bad step kill the server
                log.exception("engine step failed")
                self.stats.errors += 1
                for row in self._rows:
                    self._finish(row.req, "error", f"generation failed: {err}")
                for req in new:
                    if not req.finished:
                        self._finish(req, "error", f"generation failed: {err}")
                self._rows, self._cache, self._mask = [], None, None

    def _admit(self) -> list[GenerationRequest] | None:
        with self._cond:
            while not self._stopping and not self._rows and not self._waiting:
                self._cond.wait()
            if self._stopping:
                for req in list(self._waiting) + [r.req for r in self._rows]:
                    self._finish(req, "error", "the server is shutting down")
                self._waiting.clear()
                self._rows = []
                return None
            room = self.config.max_batch - len(self._rows)
            if self._rows and not (self.config.continuous and self._can_merge()):
                room = 0
            new = []
            while room > 0 and self._waiting:
                req = self._waiting.popleft()
                if req.cancelled:
                    self._finish(req, "cancelled")
                    continue
                new.append(req)
                room -= 1
            return new

    def _can_merge(self) -> bool:
        return self._cache is not None and all(type(layer) is self._dynamic_layer for layer in self._cache.layers)

    def _finish(self, req: GenerationRequest, reason: str, error: str | None = None) -> None:
        if req.finished:
            return
        req.finished = True
        if reason == "cancelled":
            self.stats.requests_cancelled += 1
        else:
            self.stats.requests_finished += 1
        req.emit(("finish", reason, error))

    def _step(self, new: list[GenerationRequest]) -> None:
        rows = self._rows
        gone = [i for i, r in enumerate(rows) if r.req.cancelled]
        if gone:
            for i in gone:
                self._finish(rows[i].req, "cancelled")
            self._select([i for i, r in enumerate(rows) if not r.req.cancelled])
            rows = self._rows
        if not rows and not new:
            return
        parts = []
        if rows:
            t0 = time.perf_counter()
            width = max(len(r.pending) for r in rows)
            if width == 1:
                ids = torch.tensor([r.pending for r in rows], dtype=torch.long, device=self.device)
                self._mask = torch.cat([self._mask, torch.ones((len(rows), 1), dtype=self._mask.dtype, device=self.device)], 1)
                pos = self._mask.sum(1, keepdim=True) - 1
            else:  # jumped rows feed several tokens; the others are left-padded inside this chunk
                ids, chunk = left_padded([r.pending for r in rows], self.pad_id)
                ids = ids.to(self.device)
                self._mask = torch.cat([self._mask, chunk.to(self.device, self._mask.dtype)], 1)
                pos = (self._mask.cumsum(1) - 1).clamp(min=0)[:, -width:]
            out = self.model(input_ids=ids, attention_mask=self._mask, position_ids=pos, past_key_values=self._cache, use_cache=True, logits_to_keep=1)
            self._cache = out.past_key_values
            parts.append(out.logits[:, -1].float())
            self.stats.forward_seconds += time.perf_counter() - t0
        if new:
            parts.append(self._prefill(new))
        logits = torch.cat(parts) if len(parts) > 1 else parts[0]
        rows = self._rows
        tokens, entries = self._sample(logits, rows)
        for row, tok in zip(rows, tokens):
            state = row.grammar
            if row.failed is None and state is not None and not state.is_terminated():
                self._guarded(row, functools.partial(_accept, state, tok))
        self.stats.steps += 1
        done = []
        now = time.perf_counter()
        for i, (row, tok) in enumerate(zip(rows, tokens)):
            row.generated += 1
            row.pending = [tok]
            req = row.req
            if row.failed is not None:
                self._finish(req, "error", row.failed)
                done.append(i)
                continue
            if req.first_token_at is None:
                req.first_token_at = now
            req.emit(("token", tok, entries[i] if entries else None))
            # a request that asks for logprobs is not jumped: each of its tokens comes from a step
            # of its own, with the top_logprobs that step saw
            if self.config.jump_forward and req.logprobs is None and tok >= 0 and row.grammar is not None and not row.grammar.is_terminated():
                for forced in self._guarded(row, functools.partial(self._jump, row)) or ():
                    row.generated += 1
                    row.pending.append(forced)
                    req.emit(("token", forced, None))
                if row.failed is not None:
                    self._finish(req, "error", row.failed)
                    done.append(i)
                    continue
            if tok < 0:
                self._finish(req, "error", "the grammar allows no token here")
                done.append(i)
            elif (row.grammar.is_terminated() if row.grammar is not None else tok in self.stop_set):
                self._finish(req, "stop")
                done.append(i)
            elif row.generated >= req.max_tokens or row.prompt_len + row.generated >= self.max_context:
                self._finish(req, "length")
                done.append(i)
        self.stats.generated_tokens += sum(len(r.pending) for r in rows)
        if done:
            drop = set(done)
            self._select([i for i in range(len(rows)) if i not in drop])

    def _jump(self, row: _Row) -> list[int]:
        """Tokens of the text the row's grammar forces now, already accepted by its matcher; one
        sampled token's room is left within max_tokens."""
        assert row.grammar is not None
        ids = row.grammar.jump(self._forced_tokens, row.req.max_tokens - row.generated - 1)
        self.stats.jump_forward_tokens += len(ids)
        return ids

    def _guarded(self, row: _Row, work: Callable[[], Any]) -> Any:
        """`work()` for one row; if it raises, the row fails alone (None is returned)."""
        try:
            return work()
        except Exception as err:  # noqa: BLE001 - whatever broke, it broke for this row only
            self._fail(row, err)
            return None

    def _fail(self, row: _Row, err: Exception) -> None:
        log.exception("row failed (request ended, the batch goes on)", exc_info=err)
        if row.failed is None:
            self.stats.row_errors += 1
            row.failed = f"generation failed: {type(err).__name__}: {err}"
        row.grammar = None  # nothing more is asked of a broken matcher

    def _prefill(self, new: list[GenerationRequest]) -> torch.Tensor:
        from transformers import DynamicCache

        t0 = time.perf_counter()
        n = len(new)
        ids, mask = left_padded([r.prompt_ids for r in new], self.pad_id)
        ids, mask = ids.to(self.device), mask.to(self.device)
        pos = (mask.cumsum(1) - 1).clamp(min=0)
        try:
            cache = DynamicCache(config=self.model.config)
        except TypeError:
            cache = DynamicCache()
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache, use_cache=True, logits_to_keep=1)
        cache = out.past_key_values
        self.stats.prefill_seconds += time.perf_counter() - t0
        self.stats.requests_admitted += n
        self.stats.prompt_tokens += int(mask.sum())
        if self._rows:
            self._merge(cache, mask)
        else:
            self._cache, self._mask = cache, mask
        for req in new:
            row = _Row(req, None, np.random.default_rng(req.seed), self.device)
            if req.grammar is not None:
                row.grammar = self._guarded(row, functools.partial(GrammarState, req.grammar, self.stop_ids, req.budget))
            self._rows.append(row)
        return out.logits[:, -1].float()

    # ------------------------------------------------------------------------------ batch surgery
    def _merge(self, cache, mask: torch.Tensor) -> None:
        t1, t2 = self._mask.shape[1], mask.shape[1]
        width = max(t1, t2)
        for a, b in zip(self._cache.layers, cache.layers):
            a.keys = torch.cat([_left_pad(a.keys, width - t1), _left_pad(b.keys, width - t2)], 0)
            a.values = torch.cat([_left_pad(a.values, width - t1), _left_pad(b.values, width - t2)], 0)
        self._mask = torch.cat([F.pad(self._mask, (width - t1, 0)), F.pad(mask, (width - t2, 0))], 0)

    def _select(self, keep: list[int]) -> None:
        if not keep:
            self._rows, self._cache, self._mask = [], None, None
            return
        if len(keep) == len(self._rows):
            return
        idx = torch.tensor(keep, dtype=torch.long, device=self.device)
        self._cache.batch_select_indices(idx)
        self._mask = self._mask[idx]
        self._rows = [self._rows[i] for i in keep]
        # drop the columns that are padding for every remaining row
        if self._can_merge():
            used = self._mask.any(0)
            first = int(torch.argmax(used.to(torch.uint8)))
            if first > 0:
                self._mask = self._mask[:, first:]
                for layer in self._cache.layers:
                    layer.keys = layer.keys[:, :, first:]
                    layer.values = layer.values[:, :, first:]

    # ------------------------------------------------------------------------------ sampling
    def _sample(self, logits: torch.Tensor, rows: list[_Row]) -> tuple[list[int], list | None]:
        t0 = time.perf_counter()
        if self.bias_vec is not None:
            logits += self.bias_vec
        for i, row in enumerate(rows):
            if row.bias_idx is not None and row.bias_val is not None:
                logits[i, row.bias_idx] += row.bias_val
            if self.first_bias_vec is not None and row.generated == 0:
                logits[i] += self.first_bias_vec
        t1 = time.perf_counter()
        failures: dict[int, Exception] = {}
        active = self._masks.fill([r.grammar for r in rows], failures)
        self._masks.apply(logits, active, failures)
        for i, err in failures.items():
            self._fail(rows[i], err)
        t2 = time.perf_counter()
        self.stats.mask_seconds += t2 - t1
        n = len(rows)
        tokens = [0] * n
        alive = (logits.amax(-1) > float("-inf")).tolist()  # (isfinite().any() is ~20x slower on CPU)
        greedy = [i for i in range(n) if rows[i].req.temperature <= 0 and alive[i]]
        sampled = [i for i in range(n) if rows[i].req.temperature > 0 and alive[i]]
        if greedy:
            for i, t in zip(greedy, logits[greedy].argmax(-1).tolist()):
                tokens[i] = t
        if sampled:
            temps = torch.tensor([rows[i].req.temperature for i in sampled], dtype=torch.float32, device=logits.device)
            x = logits[sampled]
            x /= temps[:, None]
            for j, i in enumerate(sampled):
                if rows[i].req.top_p < 1.0:
                    x[j] = _top_p(x[j], rows[i].req.top_p)
            u = torch.tensor([1.0 - rows[i].rng.random() for i in sampled], dtype=torch.float64, device=logits.device)
            for i, t in zip(sampled, sample_categorical(x, u).tolist()):
                tokens[i] = t
        for i in range(n):
            if not alive[i]:
                tokens[i] = -1
        entries: list | None = None
        if any(r.req.logprobs is not None for r in rows):
            entries = [None] * n
            for i, row in enumerate(rows):
                if row.req.logprobs is not None and tokens[i] >= 0:
                    lsm = torch.log_softmax(logits[i], -1)
                    top = []
                    if row.req.logprobs > 0:
                        vals, ids = torch.topk(lsm, row.req.logprobs)
                        top = list(zip(ids.tolist(), vals.clamp(min=LOGPROB_FLOOR).tolist()))
                    entries[i] = (max(float(lsm[tokens[i]]), LOGPROB_FLOOR), top)
        # a dead row (no token allowed; reported as an error) must not reach the matcher
        for i in range(n):
            if tokens[i] < 0:
                rows[i].grammar = None
        self.stats.sample_seconds += (t1 - t0) + (time.perf_counter() - t2)
        return tokens, entries


def _accept(state: GrammarState, token: int) -> None:
    if not state.accept(token):
        raise ValueError(f"token {int(token)} is not allowed by the grammar (was the mask applied?)")


SAMPLE_BLOCK = 512


def sample_categorical(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF sampling from softmax(x) per row, one uniform u in (0, 1] per row.

    Two levels (block sums, then the one block the CDF falls in) instead of a cumulative sum
    over the whole vocabulary: the same distribution at a fraction of the cost. A token of
    weight 0 (logit -inf, or underflow) is never returned while the row has any weight.
    `x` is overwritten.
    """
    rows, vocab = x.shape
    w = x.sub_(x.amax(-1, keepdim=True)).exp_()  # unnormalised probabilities, in place
    full = vocab // SAMPLE_BLOCK
    sums = w[:, : full * SAMPLE_BLOCK].reshape(rows, full, SAMPLE_BLOCK).sum(-1)
    if full * SAMPLE_BLOCK < vocab:
        sums = torch.cat([sums, w[:, full * SAMPLE_BLOCK :].sum(-1, keepdim=True)], 1)
    cdf = sums.to(torch.float64).cumsum(-1)
    nb = cdf.shape[1]
    target = u * cdf[:, -1]
    b = torch.searchsorted(cdf, target[:, None]).squeeze(1).clamp(max=nb - 1)
    before = torch.where(b > 0, cdf.gather(1, (b - 1).clamp(min=0)[:, None]).squeeze(1), torch.zeros_like(target))
    idx = b[:, None] * SAMPLE_BLOCK + torch.arange(SAMPLE_BLOCK, device=x.device)
    inner = w.gather(1, idx.clamp(max=vocab - 1)).masked_fill_(idx >= vocab, 0).to(torch.float64).cumsum(-1)
    # rounding can put the residual a hair outside the block's own total: keep it in (0, total]
    rest = torch.minimum((target - before).clamp(min=1e-300), inner[:, -1])
    j = torch.searchsorted(inner, rest[:, None]).squeeze(1).clamp(max=SAMPLE_BLOCK - 1)
    picks = (b * SAMPLE_BLOCK + j).clamp(max=vocab - 1)
    bad = w.gather(1, picks[:, None]).squeeze(1) <= 0
    if bool(bad.any()):  # only reachable through rounding: the most likely token instead
        picks = torch.where(bad, w.argmax(-1), picks)
    return picks


def _top_p(x: torch.Tensor, p: float) -> torch.Tensor:
    probs = torch.softmax(x, -1)
    sorted_probs, order = torch.sort(probs, descending=True)
    before = sorted_probs.cumsum(-1) - sorted_probs
    drop = order[before > p]
    x = x.clone()
    x[drop] = float("-inf")
    return x
