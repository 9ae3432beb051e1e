"""The budget guarantee inside vLLM: every output of our grammar completes within `max_tokens`.

    vllm serve MODEL --enable-auto-tool-choice --tool-call-parser constrained_kimi_k2 \\
        --logits-processors constrained.integrations.vllm.budget:ToolCallBudget

A vLLM (V1 interface) logits processor. vLLM applies it after the grammar's bitmask, in the process
that samples. For each request whose grammar is ours (the header line of `structured_outputs.grammar`,
see `constrained.integrations.vllm`), it keeps a replica of the grammar state: the same grammar,
compiled with the same marker vocabulary, advanced by the request's output tokens at every step,
and our `constrained.budget.RowBudget` on it, with the request's `max_tokens` (vLLM has already
clipped it to the context left). The replica costs one token acceptance per step; it fills no mask.
Far from the end of the budget `restrict` is a few comparisons. Near it, only tokens after which
the output can still be finished are kept, exactly as in our server and in `transformers`. Every
other request (no tools, another grammar, `ignore_eos`) is left alone. A request whose grammar
cannot be followed (a compile error, a token the replica refuses) goes unbudgeted, with a log
line; it never stops the engine.

Cost: the replica's grammar is compiled in this process (vLLM compiles its own in the engine
process), when the request joins the batch, cached by its text: a new tool set costs its compile
time once more, on the step it joins.

Not a `vllm.logits_processors` entry point on purpose: vLLM's V2 model runner (the default on
some GPUs) refuses V1-interface plug-ins at start-up, so an entry point would stop every vLLM
where this project is installed. Pass it with `--logits-processors` (as `constrained serve
--engine vllm` does); under the V2 runner set `VLLM_USE_V2_MODEL_RUNNER=0`.

What vLLM cannot carry back from here: the response's `finish_reason` is vLLM's (`tool_calls` or
`stop` for an output the budget closed, since it ended with EOS), and a call cut short is not
flagged; the count of budget-forced rows is logged. Speculative decoding disables custom logits
processors in vLLM.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates

from constrained import dialect as registry
from constrained.budget import RowBudget
from constrained.compiler import GrammarCache, eos_token_ids, grammar_cache
from constrained.decoding import GrammarState

from . import header_dialect, lazy_route

log = logging.getLogger("vllm.constrained")



class _Row:
    """One request's replica grammar state, the live list of its output tokens, and how many of
    them the replica has accepted."""

    __slots__ = ("output", "state", "seen", "dead")

    def __init__(self, output: list[int], state: GrammarState):
        self.output, self.state, self.seen, self.dead = output, state, 0, False

    def catch_up(self) -> bool:
        """Accept the tokens sampled since the last step; False when the replica cannot follow
        (a token it refuses: the row is left alone from then on)."""
        new = self.output[self.seen:]
        if new and min(new) < 0:  # a placeholder of asynchronous scheduling: the token is not known yet
            new = new[: next(i for i, t in enumerate(new) if t < 0)]
        accepted = self.state.accept_tokens(new)
        self.seen += accepted
        if accepted < len(new):
            self.dead = True
            log.warning("constrained budget: the replica grammar refused token %d; this request's budget is no longer enforced", new[accepted])
        return not self.dead and self.seen == len(self.output)


class ToolCallBudget(LogitsProcessor):
    def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool):
        self.model_config = vllm_config.model_config
        self.rows: dict[int, _Row] = {}
        self._cache: GrammarCache | None = None
        self._lock = threading.Lock()
        self.forced = 0  # requests the budget closed early, in this process

    @classmethod
    def validate_params(cls, params: Any) -> None:
        return None

    def is_argmax_invariant(self) -> bool:
        return False  # it changes which token wins

    def cache(self) -> GrammarCache:
        """The grammar cache of the model's tokenizer (loaded at the first budgeted request)."""
        with self._lock:
            if self._cache is None:
                from transformers import AutoTokenizer

                mc = self.model_config
                tokenizer = AutoTokenizer.from_pretrained(mc.tokenizer, revision=mc.tokenizer_revision, trust_remote_code=mc.trust_remote_code)
                self._cache = grammar_cache(tokenizer, mc.get_vocab_size())
            return self._cache

    def _row(self, params: Any, prompt: list[int] | None, output: list[int]) -> _Row | None:
        try:
            return self._new_row(params, output)
        except Exception:  # one request's trouble must not stop vLLM's engine: it goes unbudgeted
            log.exception("constrained budget: could not follow this request's grammar; its budget is not enforced")
            return None

    def _new_row(self, params: Any, output: list[int]) -> _Row | None:
        spec = getattr(getattr(params, "structured_outputs", None), "grammar", None)
        if not isinstance(spec, str):
            return None
        name = header_dialect(spec)
        if name is None or params.max_tokens is None or params.ignore_eos:
            return None
        cache = self.cache()
        d = registry.get(name)
        compiled = cache.compile_ebnf(d, spec, lazy=lazy_route(spec))  # the grammar the backend compiled, on its route
        stop_ids: Sequence[int] = sorted(params.all_stop_token_ids) or eos_token_ids(cache.tokenizer)
        state = GrammarState(compiled.grammar, stop_ids)
        state.budget = RowBudget(cache.closer(d, stop_ids), params.max_tokens, cache.margin(d, compiled, stop_ids))
        return _Row(output, state)

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        process_dict_updates(self.rows, batch_update, self._row)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        for i, row in self.rows.items():
            try:
                self._restrict(i, row, logits)
            except Exception:  # this row alone goes unbudgeted; the batch goes on
                row.dead = True
                log.exception("constrained budget: the budget check failed; this request's budget is no longer enforced")
        return logits

    def _restrict(self, i: int, row: _Row, logits: torch.Tensor) -> None:
        if row.dead or not row.catch_up() or row.state.is_terminated():
            return
        budget = row.state.budget
        assert budget is not None
        was_forced = budget.forced
        budget.restrict(row.state, logits, i, unmask=False)  # vLLM's grammar mask is the judge: never give a masked token back
        if budget.blocked:
            row.dead = True
            log.warning("constrained budget: every token that finishes in time is masked by vLLM's grammar (the replica and the engine "
                        "disagree); this request's budget is no longer enforced")
        elif budget.forced and not was_forced:
            self.forced += 1
            log.info("constrained budget: closing an output within its max_tokens (%d so far in this process)", self.forced)
