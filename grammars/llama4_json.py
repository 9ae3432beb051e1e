"""Llama 4 JSON tool calls: vLLM parses them with the Llama 3 JSON parser, so the same syntax."""

from dataclasses import replace

from constrained import chat_format
from constrained.grammars.llama3_json import LLAMA3_JSON

LLAMA4_JSON = replace(LLAMA3_JSON, chat=chat_format.LLAMA4, name="llama4_json", models="Llama 4 (JSON)")
