"""Ling 3: the GLM-4.7 syntax (vLLM's ling3 parser uses the GLM-4.7 grammar)."""

from dataclasses import replace

from constrained import chat_format
from constrained.grammars.glm47 import GLM47

LING3 = replace(GLM47, chat=chat_format.LING, name="ling3", models="Ling 3")
