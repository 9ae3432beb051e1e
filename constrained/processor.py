"""`transformers` integration: a logits processor that enforces a dialect's tool-call grammar."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from transformers import LogitsProcessor

from . import dialect as registry
from .budget import BUDGET_CALLS, RowBudget, check_budget
from .compiler import eos_token_ids, grammar_cache
from .decoding import GrammarBatch, GrammarState, accept_all
from .dialect import Dialect
from .grammar import GrammarOptions
from .parsing import ParseResult, parse
from .types import Tool, as_tools


class ToolCallLogitsProcessor(LogitsProcessor):
    """Constrain `model.generate` to the dialect's tool-call syntax and the tools' schemas.

    >>> proc = ToolCallLogitsProcessor(tokenizer, dialect="kimi_k2", tools=tools, tool_choice="required")
    >>> out = model.generate(**inputs, logits_processor=[proc], do_sample=True, max_new_tokens=64)
    >>> result = proc.parse(out[0, inputs["input_ids"].shape[1]:])

    Works for batches (left padding), greedy and sampling. Once a row's grammar is complete only
    EOS is allowed. The grammar is compiled once (cached by content).

    Lifecycle: each `generate` call starts with fresh grammar states. The processor knows the call
    it belongs to by the `generation_config` object that `generate` makes for each call (found on
    the calling stack); outside `generate` (a hand-written loop), a step that does not continue the
    previous one by one token starts over, and `reset()` starts over explicitly. Beam search
    (`num_beams > 1`) is refused with a ValueError: beams are reordered between steps, which a
    matcher per row cannot follow.

    Budget: with `max_new_tokens` (this argument, else the `generate` call's own
    `max_new_tokens` / `max_length`), every output completes within it (`constrained.budget`): an
    open string closes, required arguments get short values, the call and section end, EOS. A
    budget below the shortest complete answer of a `required` / named call is a ValueError, raised
    before decoding. `think_open`: the prompt ends inside the dialect's think block (a thinking
    template's generation prompt), so the output starts there. `budget_forced(row)` says whether the budget closed that row early; `parse`
    flags the calls it cut (`ParseResult.truncated`), or drops them with `budget_calls="drop"`.
    """

    def __init__(
        self,
        tokenizer: Any,
        dialect: str | Dialect = "hermes",
        tools: Sequence[Tool | Mapping] | None = None,
        tool_choice: Any = "auto",
        parallel_tool_calls: bool = True,
        *,
        first_index: int = 0,
        reasoning: bool = True,
        max_calls: int = 8,
        content_schema: Any = None,
        additional_properties: str = "forbid",
        eos_token_id: int | Sequence[int] | None = None,
        vocab_size: int | None = None,
        max_new_tokens: int | None = None,
        budget_calls: str = "flag",
        think_open: bool = False,
        budget: bool = True,
    ):
        self.dialect = registry.get(dialect)
        self.tokenizer = tokenizer
        self.tools = as_tools(tools)
        # content_schema: True (any JSON object) or a JSON schema the text must match (response_format)
        # additional_properties: "forbid" undeclared argument names, or follow the "schema" (constrained.schema)
        self.options = GrammarOptions(
            tool_choice, parallel_tool_calls, first_index, max_calls, reasoning, think_open, content_schema, additional_properties
        )
        if budget_calls not in BUDGET_CALLS:
            raise ValueError(f"budget_calls must be one of {', '.join(BUDGET_CALLS)}, got {budget_calls!r}")
        self.budget_calls = budget_calls
        self.cache = grammar_cache(tokenizer, vocab_size)
        # errors surface here, not mid-generate
        self._compile_result = self.cache.compile(self.dialect, self.tools, self.options)
        self.compiled = self._compile_result.grammar
        if eos_token_id is None:
            self.stop_ids = eos_token_ids(tokenizer)
        else:
            self.stop_ids = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
        self.closer = self.cache.closer(self.dialect, self.stop_ids)
        self.max_new_tokens = max_new_tokens
        self.budgeted = budget  # False: no budget-aware closing (outputs may be cut mid-call)
        if max_new_tokens is not None and budget:
            self._check_budget(max_new_tokens)
        self.batch = GrammarBatch(self.cache.vocab_size)
        self.states: list[GrammarState] | None = None  # one per row of the current generate call
        self._call: Any = None  # the generation_config of the generate call the states belong to
        self._last: torch.Tensor | None = None

    # -- budget -------------------------------------------------------------------------------------
    def minimum_tokens(self) -> int | None:
        """The fewest tokens of a complete answer (1 when the grammar may end at once; None when
        the closer found no way to finish, e.g. a pattern it cannot see its way out of)."""
        return check_budget(self.closer, GrammarState(self.compiled, self.stop_ids), None)

    def _check_budget(self, budget: int) -> None:
        check_budget(self.closer, GrammarState(self.compiled, self.stop_ids), budget)

    def _state(self, budget: int | None) -> GrammarState:
        state = GrammarState(self.compiled, self.stop_ids)
        if budget is not None:
            state.budget = RowBudget(self.closer, budget, self.cache.margin(self.dialect, self._compile_result, self.stop_ids))
        return state

    # -- lifecycle ----------------------------------------------------------------------------------
    def reset(self) -> None:
        self.states, self._last, self._call = None, None, None

    def _continues(self, input_ids: torch.Tensor) -> bool:
        """Outside generate: is this the next step of the generation we saw last?"""
        last = self._last
        return (
            last is not None
            and input_ids.shape[0] == last.shape[0]
            and input_ids.shape[1] == last.shape[1] + 1
            and torch.equal(input_ids[:, :-1], last)
        )

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        call = _generation_config()
        if call is not None and getattr(call, "num_beams", 1) > 1:
            raise ValueError("ToolCallLogitsProcessor does not support beam search (num_beams > 1): beams are reordered "
                             "between steps and a grammar state per row cannot follow them; use greedy or sampling")
        same = (call is self._call) if call is not None else self._continues(input_ids)
        if self.states is not None and same:
            accept_all(self.states, input_ids[:, -1].tolist())
        else:
            self.start(input_ids.shape[0], call, input_ids.shape[1])
        self._last = input_ids
        return self.mask(scores)  # type: ignore[return-value]

    def start(self, rows: int, call: Any = None, prompt_length: int = 0) -> None:
        """Fresh grammar states for a generate call of `rows` sequences; the budget is this
        processor's `max_new_tokens`, else the call's (its `generation_config`)."""
        budget = self.max_new_tokens if self.budgeted else None
        if budget is None and call is not None and self.budgeted:
            budget = call.max_new_tokens
            if budget is None and call.max_length is not None:
                budget = call.max_length - prompt_length
        if budget is not None:
            self._check_budget(budget)
        self.states = [self._state(budget) for _ in range(rows)]
        self._call = call

    def mask(self, scores: torch.Tensor) -> torch.Tensor:
        """Mask every live row's disallowed tokens in `scores` (in place), from the states as they
        are (a decoding loop that advances `states` itself calls this instead of `__call__`)."""
        assert self.states is not None, "start() first"
        rows = self.batch.fill(self.states)
        self.batch.apply(scores, rows)
        return scores

    # -- results ------------------------------------------------------------------------------------
    def is_done(self, row: int = 0) -> bool:
        """Did row `row` complete its grammar (a cut-off output returns False)?"""
        return self.states is not None and self.states[row].is_completed()

    def budget_forced(self, row: int = 0) -> bool:
        """Did the budget close this row's output early (its `finish_reason` is "length")?"""
        budget = self.states[row].budget if self.states is not None else None
        return budget is not None and budget.forced

    def parse(self, token_ids: Sequence[int] | torch.Tensor, row: int = 0) -> ParseResult:
        """Parse a row's generated tokens (stop and pad tokens are left out) with this processor's
        dialect, tools and policy; calls the budget cut are flagged (or dropped, per `budget_calls`)."""
        ids = token_ids.tolist() if isinstance(token_ids, torch.Tensor) else list(token_ids)
        hidden = set(self.stop_ids) | {getattr(self.tokenizer, "pad_token_id", None)}
        ids = [t for t in ids if t not in hidden]
        text = self.tokenizer.decode(ids, skip_special_tokens=False)
        budget = self.states[row].budget if self.states is not None else None
        closed_at = None
        if budget is not None and budget.forced_at is not None:
            closed_at = len(self.tokenizer.decode(ids[: budget.forced_at], skip_special_tokens=False))
        return parse(text, self.dialect, self.tools, self.options.first_index, additional_properties=self.options.additional_properties,
                     budget_closed_at=closed_at, budget_calls=self.budget_calls, think_open=self.options.think_open)


def _generation_config() -> Any:
    """The `generation_config` of the `transformers` generate call on the stack, if any."""
    frame: Any = sys._getframe(2)
    for _ in range(8):
        if frame is None:
            return None
        config = frame.f_locals.get("generation_config")
        if config is not None and hasattr(config, "num_beams"):
            return config
        frame = frame.f_back
    return None
