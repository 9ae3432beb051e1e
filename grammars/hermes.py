"""Hermes / Qwen2.5 / Qwen3: each call its own <tool_call> block, blocks separated by a newline."""

from constrained import chat_format
from constrained.dialect import Dialect

HERMES = Dialect(
    name="hermes",
    models="Hermes 2 Pro/3, Qwen2.5, QwQ, Qwen3",
    description="Hermes, Qwen2.5, Qwen3: <tool_call>\\n{\"name\": ..., \"arguments\": {...}}\\n</tool_call>",
    call_template='<tool_call>\n{{"name": "{name}", "arguments": {arguments}}}\n</tool_call>',
    call_separator="\n",
    arguments="json",
    # single tokens in Qwen2.5/Qwen3 vocabularies; a tokenizer without them gets them spelled
    special_tokens=("<tool_call>", "</tool_call>", "<think>", "</think>"),
    reasoning=("<think>", "</think>"),
    chat=chat_format.CHATML,
)
