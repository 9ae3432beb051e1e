"""IBM granite-20b-functioncalling: `<function_call> {json}` per call, one per line (the file is
named for Python; the dialect keeps vLLM's name)."""

from constrained import chat_format
from constrained.dialect import Dialect

GRANITE_20B_FC = Dialect(
    name="granite-20b-fc",
    models="granite-20b-functioncalling",
    description='<function_call> {"name": ..., "arguments": {...}}',
    call_template='<function_call> {{"name": "{name}", "arguments": {arguments}}}',
    call_separator="\n",
    chat=chat_format.GRANITE_20B_FC,
)
