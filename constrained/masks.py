"""Applying a grammar's token bitmask to a batch of logits (CPU paths of our own, xgrammar's kernel
on GPU)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import xgrammar as xgr


def _penalty_table() -> np.ndarray:
    """For each byte of a bitmask, the 8 logit penalties it stands for: 0 (allowed) or -inf."""
    bits = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1, bitorder="little")
    return np.where(bits == 1, 0.0, -np.inf).astype(np.float32)


_PENALTY = _penalty_table()
_POPCOUNT = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(axis=1).astype(np.int64)


def _allowed_tokens(packed: np.ndarray) -> np.ndarray:
    """Set bits per row of a packed bitmask (padding included)."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(packed.view(np.uint32)).sum(axis=1, dtype=np.int64)
    return _POPCOUNT[packed.view(np.uint8)].sum(axis=1)


# A row whose allowed tokens fall in at most this many of its 32-token words is written token
# by token; past it, xgrammar's kernel or one table lookup per bitmask byte is cheaper.
SCATTER_WORDS = 1024
_BIT = np.arange(32)


def _allowed_in(packed: np.ndarray, words: np.ndarray, vocab: int) -> np.ndarray:
    """Token ids (below ``vocab``) of the allowed bits in these words."""
    bits = np.unpackbits(packed[words].view(np.uint8).reshape(-1, 4), axis=1, bitorder="little")
    tokens = (words[:, None] * 32 + _BIT[None, :])[bits == 1]
    return tokens[tokens < vocab]


def _keep_allowed(row: Any, packed: np.ndarray, vocab: int) -> None:
    """Mask one row (a numpy view, or a torch tensor for dtypes numpy lacks: both index alike)
    whose few allowed tokens (structure) are kept, everything else set to -inf."""
    allowed = _allowed_in(packed, np.flatnonzero(packed), vocab)
    kept = row[allowed]
    row[...] = -np.inf
    row[allowed] = kept


_BIT_VALUES: dict[torch.device, torch.Tensor] = {}


def _bit_values(device: torch.device) -> torch.Tensor:
    """1 << k for k = 0..31 as int32 (bit 31 is the sign bit), on `device`."""
    values = _BIT_VALUES.get(device)
    if values is None:
        values = _BIT_VALUES[device] = torch.tensor(np.left_shift(np.int32(1), np.arange(32, dtype=np.int32)), device=device)
    return values


def _apply_on_device(scores: torch.Tensor, bitmask: torch.Tensor, rows: Sequence[int] | None) -> None:
    """On a GPU, in four launches: the bitmask's copy, one AND with each bit's value, a compare,
    one masked fill; plain torch ops, so any device torch runs on works (no Triton). Measured on an
    H200 (129K vocabulary, the GPU idle between calls as in `generate`): 140 µs of CPU time per call
    at batch 1 where xgrammar's Triton kernel took 325 µs, and about the same at batch 64
    (benchmarks/results/2026-12-04/gpu_sweep.txt). Rows not in `rows` are left as they are."""
    n, vocab = scores.shape[0], scores.shape[-1]
    words = (vocab + 31) // 32
    packed = bitmask[:n, :words]
    if rows is not None and len(rows) < n:
        kept = set(rows)
        packed = packed.clone()
        packed[[i for i in range(n) if i not in kept]] = -1  # every token allowed
    on_device = packed.to(scores.device, non_blocking=True)
    forbidden = (on_device.unsqueeze(-1) & _bit_values(scores.device)).eq(0).view(n, words * 32)[:, :vocab]
    scores.masked_fill_(forbidden, float("-inf"))


def forbid_past_bitmask(scores: torch.Tensor, bitmask: torch.Tensor, rows: Sequence[int] | None) -> torch.Tensor:
    """Set the ids past what the bitmask covers to -inf (in the rows given) and return the view of
    the scores it covers (the masks then write into the caller's tensor through it)."""
    covered = bitmask.shape[-1] * 32
    if scores.shape[-1] <= covered:
        return scores
    scores[slice(None) if rows is None else list(rows), covered:] = float("-inf")
    return scores[:, :covered]


def apply_bitmask_(scores: torch.Tensor, bitmask: torch.Tensor, rows: Sequence[int] | None = None) -> None:
    """Set the logits of tokens the bitmask forbids to -inf, in place.

    On CPU, per row: nothing when every token is allowed; when few tokens are allowed (most
    tool-call states) keep just those, through numpy views (a torch indexing call costs several
    µs; xgrammar's kernel writes every forbidden token: ~465 µs for such a row); the other rows
    (inside a string: many allowed) go to `xgrammar.apply_token_bitmask_inplace` in one call, or,
    for dtypes other than float32, one table lookup per bitmask byte plus one add. On a GPU:
    `_apply_on_device`. Token ids past what the bitmask covers (a model whose embedding has more
    rows than the tokenizer has tokens) are forbidden: no grammar writes them.
    """
    scores = forbid_past_bitmask(scores, bitmask, rows)
    if scores.device.type != "cpu":
        _apply_on_device(scores, bitmask, rows)
        return
    vocab = scores.shape[-1]
    words = (vocab + 31) // 32
    row_ids = list(range(scores.shape[0])) if rows is None else list(rows)
    packed = bitmask.numpy()[row_ids, :words]
    as_numpy = scores.dtype == torch.float32 and scores.is_contiguous()
    view: Any = scores.numpy() if as_numpy else scores  # numpy and torch rows index alike
    if vocab % 32:
        # the last word's bits past the vocabulary are padding: read them as allowed (a row that
        # allows every token is then seen as one, and xgrammar's kernel, which writes a padding
        # bit's -inf into the next row's first token, has nothing to write)
        packed[:, words - 1] |= np.int32(-1 << (vocab % 32))
    partial = (packed != -1).any(axis=1)  # rows where something is forbidden
    allowed_words = np.count_nonzero(packed, axis=1)
    dense_rows = []
    for k, r in enumerate(row_ids):
        if not partial[k]:
            continue
        if allowed_words[k] <= SCATTER_WORDS:
            _keep_allowed(view[r], packed[k], vocab)
        else:
            dense_rows.append(k)
    if not dense_rows:
        return
    if as_numpy:
        # xgrammar's CPU kernel costs what the forbidden tokens cost (~3.7 ns each: ~20 µs for a
        # string's row on a 129K vocabulary, ~480 µs where nearly all are forbidden); the lookup
        # per bitmask byte costs ~290 µs whatever the row. Rows with at most half forbidden go to
        # the kernel, in one call
        forbidden = (vocab - _allowed_tokens(packed[dense_rows])).tolist()
        kernel = [k for k, f in zip(dense_rows, forbidden) if f <= vocab // 2]
        dense_rows = [k for k, f in zip(dense_rows, forbidden) if f > vocab // 2]
        if kernel:
            targets = [row_ids[k] for k in kernel]
            rows_mask = np.full((scores.shape[0], words), -1, dtype=np.int32)
            rows_mask[targets] = packed[kernel]
            xgr.apply_token_bitmask_inplace(scores, torch.from_numpy(rows_mask), vocab_size=vocab, indices=targets)
        if not dense_rows:
            return
    targets = [row_ids[k] for k in dense_rows]
    penalty = _PENALTY[packed[dense_rows].view(np.uint8)].reshape(len(dense_rows), -1)[:, :vocab]
    if as_numpy:
        view[targets] += penalty
    else:
        idx = torch.as_tensor(targets)
        scores[idx] = scores[idx] + torch.from_numpy(penalty).to(scores.dtype)
