"""Sber GigaChat 3: one call per turn, `<|message_sep|>function call<|role_sep|>\\n{json}` (vLLM's
parser reads the rest of the output as ONE object)."""

from constrained import chat_format
from constrained.dialect import Dialect

GIGACHAT3 = Dialect(
    name="gigachat3",
    models="GigaChat 3",
    description='<|message_sep|>function call<|role_sep|>\\n{"name": ..., "arguments": {...}}',
    call_template='<|message_sep|>function call<|role_sep|>\n{{"name": "{name}", "arguments": {arguments}}}',
    special_tokens=("<|message_sep|>", "<|role_sep|>"),
    max_calls=1,
    chat=chat_format.GIGACHAT,
)
