"""Jump-forward inside `transformers` generate: text the grammar forces is fed in one forward pass.

    out = model.generate(**inputs, logits_processor=[proc], custom_generate=constrained.jump_forward,
                         max_new_tokens=64)

`generate` prepares the inputs as usual and calls `jump_forward` in place of its own sampling loop
(its `custom_generate` hook, a callable). The loop is `generate`'s own, except that after each
sampled token every row asks its grammar state for the text the grammar forces next (markers, a
tool name once its prefix is unique, keys, separators, closing brackets: `GrammarState.jump`),
accepts its tokens, and feeds them with the sampled token in the next forward pass. Rows that jump
feed several tokens; the others are left-padded inside that chunk (masked, positions from the
attention mask), as the server's engine does. The forced text is tokenized as a whole and its last
piece is left to the model unless it is a marker token nothing merges with (`ForcedTokens`), so the
model sees the tokens it would have written.

The `ToolCallLogitsProcessor` must be in `logits_processor` (it keeps the grammar states); the other
processors and warpers run in their order (those that read `input_ids`, such as a repetition
penalty, also see the chunk padding between jumps). Greedy and sampling, batches with left padding;
`max_new_tokens` counts jumped tokens like sampled ones and the processor's budget holds. Not
supported (a ValueError): beam search, and per-step outputs (`output_scores`, `output_logits`,
attentions, hidden states), which jumped tokens do not have. Returns the sequences as `generate`
does: the prompt, then each row's tokens, right-padded with the pad token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .processor import ToolCallLogitsProcessor


def jump_forward(model: Any, input_ids: torch.LongTensor, logits_processor: Any, stopping_criteria: Any, generation_config: Any,
                 synced_gpus: bool = False, streamer: Any = None, **model_kwargs: Any) -> Any:
    from transformers import DynamicCache
    from transformers.generation.stopping_criteria import MaxLengthCriteria

    cfg = generation_config
    procs = [p for p in logits_processor if isinstance(p, ToolCallLogitsProcessor)]
    if len(procs) != 1:
        raise ValueError(f"jump_forward needs exactly one ToolCallLogitsProcessor in logits_processor, got {len(procs)}")
    proc = procs[0]
    if getattr(cfg, "num_beams", 1) > 1:
        raise ValueError("jump_forward does not support beam search (num_beams > 1)")
    wanted = [k for k in ("output_scores", "output_logits", "output_attentions", "output_hidden_states") if getattr(cfg, k, False)]
    if cfg.return_dict_in_generate and wanted:
        raise ValueError(f"jump_forward does not return {', '.join(wanted)}: tokens the grammar forces are not sampled from scores")
    if synced_gpus:
        raise ValueError("jump_forward does not support synced_gpus (rows of different ranks would jump by different lengths)")

    if streamer is None:
        streamer = _generate_streamer()
    batch, prompt_length = input_ids.shape
    device = input_ids.device
    max_new = cfg.max_new_tokens if cfg.max_new_tokens is not None else cfg.max_length - prompt_length
    eos = cfg._eos_token_tensor.view(-1).tolist() if getattr(cfg, "_eos_token_tensor", None) is not None else []
    stops = set(eos) | set(proc.stop_ids)
    pad = cfg._pad_token_tensor if getattr(cfg, "_pad_token_tensor", None) is not None else None
    pad_id = int(pad) if pad is not None else (eos[0] if eos else 0)
    others = [c for c in stopping_criteria if not isinstance(c, MaxLengthCriteria)]  # lengths are counted per row here

    feedable = proc.cache.forced_tokens

    proc.start(batch, cfg, prompt_length)
    states = proc.states
    assert states is not None
    mask = model_kwargs.get("attention_mask")
    mask = torch.ones_like(input_ids) if mask is None else mask.to(torch.long)
    try:
        cache = DynamicCache(config=model.config)
    except TypeError:
        cache = DynamicCache()
    seen: torch.Tensor = input_ids  # what the other processors and stopping criteria see (chunk padding included)
    feed: torch.Tensor = input_ids
    generated: list[list[int]] = [[] for _ in range(batch)]
    done = [False] * batch
    while True:
        pos = (mask.cumsum(1) - 1).clamp(min=0)[:, -feed.shape[1]:]
        out = model(input_ids=feed, attention_mask=mask, position_ids=pos, past_key_values=cache, use_cache=True, logits_to_keep=1)
        cache = out.past_key_values
        scores = out.logits[:, -1].to(dtype=torch.float32, copy=True)
        for p in logits_processor:
            scores = proc.mask(scores) if p is proc else p(seen, scores)
        if cfg.do_sample:
            tokens = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)
        else:
            tokens = torch.argmax(scores, dim=-1)
        chunks: list[list[int]] = []
        for i, token in enumerate(tokens.tolist()):
            if done[i]:
                chunks.append([])
                continue
            state = states[i]
            if not state.is_terminated() and not state.accept(token):
                raise ValueError(f"row {i}: token {token} is not allowed by the grammar (was the mask applied?)")
            chunk = [token]
            if token in stops or state.is_terminated() or len(generated[i]) + 1 >= max_new:
                done[i] = True
            else:
                chunk += state.jump(feedable, max_new - len(generated[i]) - 2)  # room for the next sampled token
            generated[i] += chunk
            chunks.append(chunk)
        if streamer is not None:
            streamer.put(torch.tensor(chunks[0], dtype=torch.long))
        feed, new_mask = left_padded(chunks, pad_id)
        feed, new_mask = feed.to(device), new_mask.to(device)
        mask = torch.cat([mask, new_mask], 1)
        seen = torch.cat([seen, feed], 1)
        if others:
            for i, stop in enumerate(_any(others, seen, scores).tolist()):
                done[i] = done[i] or bool(stop)
        if all(done):
            break
    if streamer is not None:
        streamer.end()
    longest = max(len(g) for g in generated)
    tail = torch.full((batch, longest), pad_id, dtype=torch.long)
    for i, g in enumerate(generated):
        tail[i, : len(g)] = torch.tensor(g, dtype=torch.long)
    sequences = torch.cat([input_ids, tail.to(device)], 1)
    if cfg.return_dict_in_generate:
        from transformers.generation.utils import GenerateDecoderOnlyOutput

        return GenerateDecoderOnlyOutput(sequences=sequences)  # type: ignore[arg-type]
    return sequences


def left_padded(chunks: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Input ids and attention-mask columns for one forward pass in which rows feed different
    numbers of tokens (a jump, a single sampled token, or none): each row's tokens at the right,
    left-padded inside the chunk with mask 0 (the server's engine feeds its rows the same way)."""
    width = max(len(c) for c in chunks)
    ids = torch.full((len(chunks), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(chunks), width), dtype=torch.long)
    for i, c in enumerate(chunks):
        if c:
            ids[i, width - len(c):] = torch.tensor(c, dtype=torch.long)
            mask[i, width - len(c):] = 1
    return ids, mask


def _any(criteria: list, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    stop = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
    for c in criteria:
        stop |= c(input_ids, scores).to(stop.device)
    return stop


def _generate_streamer() -> Any:
    """The `streamer` given to the `generate` call on the stack. transformers 5.19 hands a
    `custom_generate` callable only the keyword arguments its own `_sample` lacks, and drops
    `streamer` (it had already put the prompt into it)."""
    import sys

    frame: Any = sys._getframe(2)
    for _ in range(6):
        if frame is None:
            return None
        if frame.f_code.co_name == "generate" and "streamer" in frame.f_locals:
            return frame.f_locals["streamer"]
        frame = frame.f_back
    return None
