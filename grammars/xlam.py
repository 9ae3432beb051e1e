"""Salesforce xLAM-2: the whole output is a JSON array of {"name", "arguments"} (no text with calls)."""

from constrained import chat_format
from constrained.dialect import Dialect

XLAM = Dialect(
    name="xlam",
    models="xLAM-2 (llama and qwen templates)",
    description='[{"name": ..., "arguments": {...}}, ...] as the whole output',
    section_begin="[",
    section_end="]",
    call_template='{{"name": "{name}", "arguments": {arguments}}}',
    call_separator=", ",
    calls_are_whole_output=True,
    chat=chat_format.XLAM,
)
