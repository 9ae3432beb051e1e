"""gpt-oss (OpenAI Harmony): reasoning on the analysis channel; a call is a commentary message to
functions.NAME ended by <|call|>, a stop token, so one call per turn; a text answer is a final-channel
message. (A preamble before a call is read as content, but the grammar does not write one.)"""

from constrained import chat_format
from constrained.dialect import Dialect

OPENAI = Dialect(
    name="openai",
    models="gpt-oss-20b, gpt-oss-120b (Harmony)",
    description="<|channel|>commentary to=functions.NAME <|constrain|>json<|message|>{...}<|call|>",
    call_template="<|channel|>commentary to=functions.{name} <|constrain|>json<|message|>{arguments}<|call|>",
    special_tokens=("<|channel|>", "<|message|>", "<|constrain|>", "<|call|>", "<|end|>", "<|start|>", "<|return|>"),
    reasoning=("<|channel|>analysis<|message|>", "<|end|><|start|>assistant"),
    content_wrapper=("<|channel|>final<|message|>", ""),
    calls_are_whole_output=True,
    max_calls=1,
    chat=chat_format.HARMONY,
)
