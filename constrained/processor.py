"""`transformers` integration: a logits processor that enforces a dialect's tool-call grammar."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from transformers import LogitsProcessor

from . import dialect as registry
from .compiler import eos_token_ids, grammar_cache
from .decoding import GrammarBatch, GrammarState, accept_all
from .dialect import Dialect
from .grammar import GrammarOptions
from .types import Tool, as_tools


class ToolCallLogitsProcessor(LogitsProcessor):
    """Constrain `model.generate` to the dialect's tool-call syntax and the tools' schemas.

    >>> proc = ToolCallLogitsProcessor(tokenizer, dialect="kimi_k2", tools=tools, tool_choice="required")
    >>> out = model.generate(**inputs, logits_processor=[proc], do_sample=True)

    Works for batches (left padding), greedy and sampling. Once a row's grammar is complete only
    EOS is allowed. The grammar is compiled once (cached by content); each `generate` call starts
    with fresh matchers.
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
    ):
        self.dialect = registry.get(dialect)
        # content_schema: True (any JSON object) or a JSON schema the text must match (response_format)
        # additional_properties: "forbid" undeclared argument names, or follow the "schema" (constrained.schema)
        self.options = GrammarOptions(
            tool_choice, parallel_tool_calls, first_index, max_calls, reasoning, content_schema, additional_properties
        )
        self.cache = grammar_cache(tokenizer, vocab_size)
        # errors surface here, not mid-generate
        self.compiled = self.cache.compile(self.dialect, as_tools(tools), self.options).grammar
        if eos_token_id is None:
            self.stop_ids = eos_token_ids(tokenizer)
        else:
            self.stop_ids = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
        self.batch = GrammarBatch(self.cache.vocab_size)
        self.states: list[GrammarState] | None = None  # one per row of the current generate call
        self._last: torch.Tensor | None = None

    def reset(self) -> None:
        self.states, self._last = None, None

    def _continues(self, input_ids: torch.Tensor) -> bool:
        """Is this the next step of the generation we saw last (not a new `generate` call)?"""
        last = self._last
        return (
            last is not None
            and input_ids.shape[0] == last.shape[0]
            and input_ids.shape[1] == last.shape[1] + 1
            and torch.equal(input_ids[:, -2], last[:, -1])
        )

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.states is not None and self._continues(input_ids):
            accept_all(self.states, input_ids[:, -1].tolist())
        else:
            self.states = [GrammarState(self.compiled, self.stop_ids) for _ in range(input_ids.shape[0])]
        self._last = input_ids
        rows = self.batch.fill(self.states)
        self.batch.apply(scores, rows)
        return scores

    def is_done(self, row: int = 0) -> bool:
        """Did row `row` complete its grammar (a cut-off output returns False)?"""
        return self.states is not None and self.states[row].is_completed()
