"""Pythonic (Llama-3.2/4, ToolACE, seed 000's "specify output format" run): a Python list of calls
with keyword arguments as Python literals. It is a call list only when it is the whole output."""

from constrained import chat_format
from constrained.dialect import Dialect

PYTHONIC = Dialect(
    name="pythonic",
    models="Llama-3.2, ToolACE, Gemma-3 (pythonic templates)",
    description="Python-style call list: [get_weather(city=\"Paris\"), search(q=\"x\", n=3)]",
    section_begin="[",
    section_end="]",
    call_template="{name}({arguments})",
    call_separator=", ",
    arguments="python",
    calls_are_whole_output=True,
    chat=chat_format.LLAMA3,
)
