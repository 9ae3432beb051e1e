"""Step-3.5 / 3.7: the Qwen3-Coder syntax (vLLM's step3p5 parser is the Qwen3 engine grammar)."""

from dataclasses import replace

from constrained import chat_format
from constrained.grammars.qwen3_coder import QWEN3_CODER

STEP3P5 = replace(QWEN3_CODER, chat=chat_format.STEP, name="step3p5", models="Step-3.5, Step-3.7")
