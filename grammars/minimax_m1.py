"""MiniMax-M1: one single-line JSON object per call inside <tool_calls> ... </tool_calls>, exactly
what the reference parser of seed 003 reads (it `json.loads` each line)."""

from constrained import chat_format
from constrained.dialect import Dialect

MINIMAX_M1 = Dialect(
    name="minimax_m1",
    models="MiniMax-M1 (ours: vLLM 0.32 has no M1 parser)",
    description="MiniMax-M1: <tool_calls>\\n{\"name\": ..., \"arguments\": {...}}\\n...</tool_calls>",
    section_begin="<tool_calls>\n",
    section_end="</tool_calls>",
    call_template='{{"name": "{name}", "arguments": {arguments}}}\n',
    arguments="json",
    # forced as single tokens where the tokenizer has them, spelled otherwise
    special_tokens=("<tool_calls>", "</tool_calls>", "<think>", "</think>"),
    reasoning=("<think>", "</think>"),
    chat=chat_format.MINIMAX_M1,
)
