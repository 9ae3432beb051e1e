"""`qwen3_xml`: vLLM's second name for the Qwen3-Coder parser (the same class), so the same syntax."""

from dataclasses import replace

from constrained import chat_format
from constrained.grammars.qwen3_coder import QWEN3_CODER

QWEN3_XML = replace(QWEN3_CODER, chat=chat_format.QWEN3_CODER, name="qwen3_xml")
