"""Llama 4 pythonic tool calls: a Python call list as the whole output (the parser also strips an
optional <|python_start|> ... <|python_end|>, which the grammar does not write)."""

from dataclasses import replace

from constrained import chat_format
from constrained.grammars.pythonic import PYTHONIC

LLAMA4_PYTHONIC = replace(PYTHONIC, chat=chat_format.LLAMA4, name="llama4_pythonic", models="Llama 4 (pythonic)",
                          special_tokens=("<|python_start|>", "<|python_end|>"))
