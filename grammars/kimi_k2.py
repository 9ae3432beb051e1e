"""Kimi-K2 (Moonshot): all five markers are special tokens; the id `functions.NAME:IDX` counts the
tool calls of the whole conversation, so the grammar forces IDX (seeds 000-002)."""

from constrained import chat_format
from constrained.dialect import Dialect

KIMI_K2 = Dialect(
    name="kimi_k2",
    models="Kimi-K2, K2-Thinking, K2.5/K2.6",
    description="Kimi-K2 / K2-Thinking: <|tool_calls_section_begin|> ... <|tool_calls_section_end|>",
    section_begin="<|tool_calls_section_begin|>",
    section_end="<|tool_calls_section_end|>",
    call_template="<|tool_call_begin|>functions.{name}:{index}<|tool_call_argument_begin|>{arguments}<|tool_call_end|>",
    arguments="json",
    special_tokens=(
        "<|tool_calls_section_begin|>",
        "<|tool_calls_section_end|>",
        "<|tool_call_begin|>",
        "<|tool_call_argument_begin|>",
        "<|tool_call_end|>",
        "<think>",
        "</think>",
    ),
    reasoning=("<think>", "</think>"),
    section_ends_reasoning=True,
    call_id="functions.{name}:{index}",
    chat=chat_format.KIMI,
)
