"""Microsoft Phi-4-mini: `functools[` then the calls as a JSON list."""

from constrained import chat_format
from constrained.dialect import Dialect

PHI4_MINI_JSON = Dialect(
    name="phi4_mini_json",
    models="Phi-4-mini",
    description='functools[{"name": ..., "arguments": {...}}, ...]',
    section_begin="functools[",
    section_end="]",
    call_template='{{"name": "{name}", "arguments": {arguments}}}',
    call_separator=", ",
    chat=chat_format.PHI4_MINI,
)
