"""Our CPU mask application equals xgrammar's, for all rows, a subset, and other dtypes."""

import pytest
import torch
import xgrammar as xgr

from constrained.matching import apply_bitmask_

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
