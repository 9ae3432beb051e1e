"""Llama 3.1/3.2/3.3 JSON tool calls: `{"name": N, "parameters": {...}}` as the whole output. vLLM's
parser needs a non-empty separator between two objects (back to back, `}{`, it loses both), so
calls are joined by "; "."""

from constrained import chat_format
from constrained.dialect import Dialect

LLAMA3_JSON = Dialect(
    name="llama3_json",
    models="Llama 3.1, 3.2, 3.3 (JSON)",
    description='{"name": ..., "parameters": {...}}; {"name": ...} as the whole output',
    call_template='{{"name": "{name}", "parameters": {arguments}}}',
    call_separator="; ",
    calls_are_whole_output=True,
    special_tokens=("<|python_tag|>",),
    chat=chat_format.LLAMA3,
)
