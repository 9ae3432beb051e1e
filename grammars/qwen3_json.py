"""`qwen3_json`: vLLM's name for Qwen2.5/Qwen3 JSON tool calls, an alias of the hermes parser."""

from dataclasses import replace

from constrained import chat_format
from constrained.grammars.hermes import HERMES

QWEN3_JSON = replace(HERMES, chat=chat_format.CHATML, name="qwen3_json", models="Qwen2.5, Qwen3 (JSON tool calls)")
