"""Run vLLM's own tool parsers over model outputs: the independent judge of our dialects.

Runs in the vLLM environment (`.venv-vllm`, made by scripts/install-vllm.sh) and imports nothing
of this project. Reads JSON on stdin:

    {"cases": [{"id": ..., "parser": "qwen3_coder", "vocab": ["<tool_call>", ...],
                "tools": [OpenAI tools], "text": "model output"}]}

(`--list`: the registered parser names instead) and writes JSON on stdout: [{"id": ..., "calls": [{"name": ..., "arguments": <the arguments
parsed as JSON, or the raw text when they are not JSON>}], "error": null | "..."}].

Each parser gets a minimal tokenizer whose vocabulary holds the dialect's marker tokens (what the
parsers look up) and a chat request with the tools and tool_choice "auto": the judge reads the
model's own syntax, whatever the request asked for. Harmony (`openai`) is parsed by vLLM's
HarmonyParser from the Harmony encoding's token ids of the text.
"""

from __future__ import annotations

import json
import sys
import warnings


class Tokenizer:
    """What the tool parsers ask of a tokenizer: a vocabulary with the marker tokens."""

    all_special_tokens: list[str] = []
    all_special_ids: list[int] = []
    init_kwargs: dict = {}
    chat_template = None

    def __init__(self, vocab):
        self._vocab = {token: i for i, token in enumerate(vocab)}

    def get_vocab(self):
        return self._vocab

    def encode(self, text, **kwargs):
        return []

    def decode(self, ids, **kwargs):
        return ""

    def convert_tokens_to_ids(self, token):
        return self._vocab.get(token)


def _arguments(text):
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def _harmony(case, request):
    from vllm.entrypoints.openai.parser.harmony_utils import get_encoding
    from vllm.parser.harmony import HarmonyParser
    from vllm.reasoning.gptoss_reasoning_parser import GptOssReasoningParser
    from vllm.tool_parsers.gptoss_tool_parser import GptOssToolParser

    tok = Tokenizer(case["vocab"])
    parser = HarmonyParser(tok, request.tools)
    # what vLLM's parser manager plugs in for gpt-oss (the reasoning parser needs no tokenizer here)
    parser._reasoning_parser = GptOssReasoningParser.__new__(GptOssReasoningParser)
    parser._tool_parser = GptOssToolParser(tok, request.tools)
    ids = get_encoding().encode(case["text"], allowed_special="all")
    _, _, calls = parser.parse(case["text"], request, enable_auto_tools=True, model_output_token_ids=ids)
    return [{"name": c.name, "arguments": _arguments(c.arguments)} for c in calls or []]


def judge(case):
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    from vllm.tool_parsers import ToolParserManager

    request = ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "hi"}], tools=case["tools"], tool_choice="auto")
    if case["parser"] == "openai":
        return _harmony(case, request)
    cls = ToolParserManager.get_tool_parser(case["parser"])
    tok = Tokenizer(case["vocab"])
    parser = cls(tok, request.tools) if "tools" in cls.__init__.__code__.co_varnames else cls(tok)
    request = parser.adjust_request(request) if hasattr(parser, "adjust_request") else request
    result = parser.extract_tool_calls(case["text"], request)
    if not result.tools_called:
        return []
    return [{"name": c.function.name, "arguments": _arguments(c.function.arguments)} for c in result.tool_calls]


def main():
    warnings.simplefilter("ignore")
    if sys.argv[1:] == ["--list"]:  # the parser names this vLLM registers
        from vllm.tool_parsers import ToolParserManager

        json.dump(sorted(ToolParserManager.list_registered()), sys.stdout)
        return
    cases = json.load(sys.stdin)["cases"]
    out = []
    for case in cases:
        try:
            out.append({"id": case["id"], "calls": judge(case), "error": None})
        except Exception as err:  # a parser that raises is a verdict too
            out.append({"id": case["id"], "calls": [], "error": f"{type(err).__name__}: {err}"})
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
