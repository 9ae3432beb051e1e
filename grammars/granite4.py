"""IBM Granite 4.0 / 4.1: hermes-like <tool_call> blocks (the Granite-4 template)."""

from dataclasses import replace

from constrained import chat_format
from constrained.grammars.hermes import HERMES

GRANITE4 = replace(HERMES, chat=chat_format.GRANITE4, name="granite4", models="Granite 4.0, 4.1", special_tokens=("<tool_call>", "</tool_call>"), reasoning=None)
