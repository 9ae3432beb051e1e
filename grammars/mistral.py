"""Mistral before tokenizer v11 (Mistral-7B-v0.3, Mixtral, Nemo): [TOOL_CALLS] then a JSON list.
Ids are 9 letters and digits, the only ids Mistral's tokenizer takes back in history."""

from constrained import chat_format
from constrained.dialect import Dialect

MISTRAL = Dialect(
    name="mistral",
    models="Mistral-7B-v0.3, Mixtral, Mistral-Nemo (tokenizer < v11)",
    description='[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]',
    section_begin="[TOOL_CALLS][",
    section_end="]",
    call_template='{{"name": "{name}", "arguments": {arguments}}}',
    call_separator=", ",
    special_tokens=("[TOOL_CALLS]",),
    call_id="alnum9",
    chat=chat_format.MISTRAL,
)
