"""InternLM2 / 2.5: one call per turn, `<|action_start|><|plugin|>\\n{json}<|action_end|>` (vLLM's
parser raises on a second call, so the format allows one)."""

from constrained import chat_format
from constrained.dialect import Dialect

INTERNLM = Dialect(
    name="internlm",
    models="InternLM2, InternLM2.5",
    description='<|action_start|><|plugin|>\\n{"name": ..., "arguments": {...}}<|action_end|>',
    call_template='<|action_start|><|plugin|>\n{{"name": "{name}", "arguments": {arguments}}}<|action_end|>',
    special_tokens=("<|action_start|>", "<|plugin|>", "<|action_end|>"),
    max_calls=1,
    chat=chat_format.INTERNLM,
)
