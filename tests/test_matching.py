"""Our mask application equals xgrammar's, for all rows, a subset, and other dtypes: the CPU paths,
and the GPU path's torch ops (run here on CPU tensors: the same ops)."""

import numpy as np
import pytest
import torch
import xgrammar as xgr
from hypothesis import given, settings
from hypothesis import strategies as st

from constrained.masks import _apply_on_device, apply_bitmask_, forbid_past_bitmask

V = 129_284  # the demo vocabulary: not a multiple of 32, so the last bitmask word is partial


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("rows", [None, [0, 2], [1]])
def test_apply_bitmask_matches_xgrammar(dtype, rows):
    g = torch.Generator().manual_seed(0)
    bitmask = xgr.allocate_token_bitmask(3, V)
    bitmask[:] = torch.randint(-(2**31), 2**31 - 1, bitmask.shape, dtype=torch.int32, generator=g)
    scores = torch.randn(3, V, generator=g).to(dtype)
    expected = scores.float().clone()
    xgr.apply_token_bitmask_inplace(expected, bitmask, indices=rows)
    apply_bitmask_(scores, bitmask, rows)
    assert torch.equal(scores, expected.to(dtype))


@pytest.mark.parametrize("allowed", [[0], [5, 31, 32, 4000, V - 1], list(range(0, V, 997))])
def test_sparse_and_dense_paths_match_xgrammar(allowed):
    bitmask = torch.zeros(2, (V + 31) // 32, dtype=torch.int32)
    for t in allowed:
        word, bit = divmod(t, 32)
        bitmask[0, word] |= torch.tensor(1 << bit, dtype=torch.int64).to(torch.int32) if bit < 31 else torch.tensor(-(2**31), dtype=torch.int32)
    bitmask[1] = -1  # all allowed
    scores = torch.randn(2, V, generator=torch.Generator().manual_seed(1))
    expected = scores.clone()
    xgr.apply_token_bitmask_inplace(expected, bitmask)
    apply_bitmask_(scores, bitmask)
    assert torch.equal(scores, expected)
    assert torch.isfinite(scores[0]).sum() == len(allowed)


def _mask_from(allowed_rows):
    bitmask = torch.zeros(len(allowed_rows), (V + 31) // 32, dtype=torch.int32)
    for r, allowed in enumerate(allowed_rows):
        bits = torch.zeros(bitmask.shape[1] * 32, dtype=torch.uint8)
        bits[torch.as_tensor(sorted(allowed), dtype=torch.long)] = 1
        packed = torch.from_numpy(np.packbits(bits.numpy(), bitorder="little").view(np.int32).copy())
        bitmask[r] = packed
    return bitmask


@settings(max_examples=40, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(["few allowed", "few forbidden", "half", "all"]), min_size=1, max_size=4),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from([torch.float32, torch.bfloat16]),
)
def test_every_path_matches_the_bitmask(kinds, seed, dtype):
    """Rows of every kind in one batch: keep-allowed, xgrammar's kernel (float32) or the lookup
    table (bfloat16), untouched. The oracle is the bitmask itself: xgrammar's CPU kernel, given a
    row whose padding bits are zero, sets token 0 of the NEXT row to -inf (xgrammar 0.2.8), which
    apply_bitmask_ must not let happen (it reads padding as allowed)."""
    rng = np.random.default_rng(seed)
    rows = []
    for kind in kinds:
        if kind == "few allowed":
            rows.append(set(rng.choice(V, size=int(rng.integers(1, 3000)), replace=False).tolist()))
        elif kind == "few forbidden":
            rows.append(set(range(V)) - set(rng.choice(V, size=int(rng.integers(1, 3000)), replace=False).tolist()))
        elif kind == "half":
            rows.append(set(np.flatnonzero(rng.random(V) < 0.5).tolist()))
        else:
            rows.append(set(range(V)))
    bitmask = _mask_from(rows)
    scores = torch.randn(len(rows), V, generator=torch.Generator().manual_seed(seed)).to(dtype)
    bits = np.unpackbits(bitmask.numpy().view(np.uint8), axis=1, bitorder="little")[:, :V].astype(bool)
    expected = torch.where(torch.from_numpy(bits), scores.float(), torch.tensor(float("-inf")))
    apply_bitmask_(scores, bitmask)
    assert torch.equal(scores, expected.to(dtype))
    assert [int(torch.isfinite(scores[r]).sum()) for r in range(len(rows))] == [len(a) for a in rows]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16), dtype=st.sampled_from([torch.float32, torch.bfloat16, torch.float16]),
       n=st.integers(1, 4), data=st.data())
def test_the_gpu_path_matches_the_bitmask(seed, dtype, n, data):
    """`_apply_on_device` (the GPU's path: AND with each bit's value, compare, masked fill) forbids
    exactly the tokens whose bits are 0, in the rows given, and leaves the other rows alone; the
    padding bits past the vocabulary never touch a token."""
    rows = data.draw(st.one_of(st.none(), st.lists(st.integers(0, n - 1), unique=True, max_size=n)))
    g = torch.Generator().manual_seed(seed)
    bitmask = torch.randint(-(2**31), 2**31 - 1, (n, (V + 31) // 32), dtype=torch.int32, generator=g)
    scores = torch.randn(n, V, generator=g).to(dtype)
    bits = np.unpackbits(bitmask.numpy().view(np.uint8), axis=1, bitorder="little")[:, :V].astype(bool)
    masked = set(range(n)) if rows is None else set(rows)
    for r in range(n):
        if r not in masked:
            bits[r] = True
    expected = torch.where(torch.from_numpy(bits), scores, torch.tensor(float("-inf"), dtype=dtype))
    _apply_on_device(scores, bitmask, rows)
    assert torch.equal(scores, expected)


@pytest.mark.parametrize("device_path", [False, True], ids=["cpu", "gpu_path"])
@pytest.mark.parametrize("rows", [None, [1]])
def test_ids_past_the_bitmask_are_forbidden(device_path, rows):
    """A model's embedding can have more rows than its tokenizer has tokens (padded vocabularies):
    the scores are wider than the bitmask, and the ids past it are no grammar's tokens."""
    vocab, width = 1000, 1100
    bitmask = xgr.allocate_token_bitmask(2, vocab)
    bitmask[:] = 0
    bitmask[:, 0] = 0b101  # tokens 0 and 2
    scores = torch.zeros(2, width)
    if device_path:  # apply_bitmask_'s GPU branch, taken on CPU tensors
        _apply_on_device(forbid_past_bitmask(scores, bitmask, rows), bitmask, rows)
    else:
        apply_bitmask_(scores, bitmask, rows)
    masked = [0, 1] if rows is None else rows
    for r in range(2):
        finite = torch.isfinite(scores[r]).nonzero().flatten().tolist()
        assert finite == ([0, 2] if r in masked else list(range(width)))
