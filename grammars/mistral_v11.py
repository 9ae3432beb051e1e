"""Mistral with tokenizer v11+ (Small 3.2, Magistral, Devstral, Ministral 3): [TOOL_CALLS]NAME[ARGS]{json}
per call, back to back (mistral_common's encoder and guidance grammar). vLLM's `mistral` parser picks
this form when [ARGS] is in the vocabulary."""

from dataclasses import replace

from constrained import chat_format
from constrained.grammars.mistral import MISTRAL

MISTRAL_V11 = replace(
    MISTRAL, chat=chat_format.MISTRAL_V11, name="mistral_v11", models="Mistral-Small-3.2, Magistral, Devstral, Ministral 3 (tokenizer v11+)",
    description="[TOOL_CALLS]NAME[ARGS]{...}[TOOL_CALLS]NAME[ARGS]{...}",
    section_begin="", section_end="", call_separator="",
    call_template="[TOOL_CALLS]{name}[ARGS]{arguments}",
    special_tokens=("[TOOL_CALLS]", "[ARGS]", "[THINK]", "[/THINK]"), reasoning=("[THINK]", "[/THINK]"),
)
