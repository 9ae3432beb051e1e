"""Zero-config detection: which dialect a checkpoint writes, from its own chat template.

The template renders a probe conversation whose assistant turn makes two tool calls
(`get_weather(city="Paris", days=2)`, `search(q="x")`); each dialect's renderer writes the same
calls; a dialect matches when its text appears in the template's, exactly or up to whitespace.
Formats that render calls alike are told apart by the rest of the conversation: how many of
the dialect's chat format's openings (user, assistant, tool result) and its end of turn the
template writes (granite4's roles are not hermes's), then by the special tokens the vocabulary has. No match is an error that lists the closest candidates. A template that writes
calls as `prefix NAME sep ARGUMENTS suffix` with JSON arguments, in none of the declared forms,
gives a dialect derived from it. A checkpoint without a chat template can only be guessed from its
special tokens, with a warning.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import dialect as registry
from .dialect import Dialect

PROBE_TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather of a city.", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "search", "description": "Search the web.", "parameters": {
        "type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}},
]
PROBE_CALLS: list[tuple[str, dict]] = [("get_weather", {"city": "Paris", "days": 2}), ("search", {"q": "x"})]
# ids as the families want them: Kimi's index ids, Mistral's 9 alphanumerics, OpenAI's call_...
_ID_STYLES = (lambda name, i: f"functions.{name}:{i}", lambda name, i: f"a1b2c3d4{i}", lambda name, i: f"call_{i}")
_SPACE = re.compile(r"\s+")


class DetectionError(ValueError):
    pass


@dataclass(frozen=True)
class Detection:
    dialect: Dialect
    reason: str  # what was matched, for the start-up log
    derived: bool = False


def _messages(calls: Sequence[tuple[str, dict]], ids, content: str = "") -> list[dict]:
    tool_calls = [{"id": ids(n, i), "type": "function", "function": {"name": n, "arguments": a}} for i, (n, a) in enumerate(calls)]
    turn: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        turn["tool_calls"] = tool_calls
    return [{"role": "user", "content": "What is the weather in Paris?"}, turn]


def _render(tokenizer: Any, messages: list[dict], generation_prompt: bool = False) -> str | None:
    try:
        out = tokenizer.apply_chat_template(messages, tools=PROBE_TOOLS, tokenize=False, add_generation_prompt=generation_prompt)
    except Exception:  # a template may refuse a probe (ids, content): another probe may pass
        return None
    return out if isinstance(out, str) else None


def probe_renders(tokenizer: Any, calls: Sequence[tuple[str, dict]] = PROBE_CALLS) -> list[str]:
    """The template's text for the probe conversation, once per id style it accepts."""
    renders = [_render(tokenizer, _messages(calls, ids)) for ids in _ID_STYLES]
    return list(dict.fromkeys(r for r in renders if r))


def _with_result(calls: Sequence[tuple[str, dict]]) -> list[dict]:
    """The probe conversation with the first call's result after it."""
    ids = _ID_STYLES[0]
    return [*_messages(calls, ids), {"role": "tool", "tool_call_id": ids(calls[0][0], 0), "name": calls[0][0], "content": "sunny"}]


def _chat_fit(d: Dialect, renders: Sequence[str]) -> int:
    """How many of the marks of `d`'s chat format (the user's and the assistant's openings, a
    tool result's, the end of turn) the template's renders write."""
    fmt = d.chat
    marks = [m for m in (fmt.user[0], fmt.assistant[0], fmt.result_opening, fmt.stop) if m.strip()]
    return sum(1 for m in marks if any(m in r for r in renders))


def _squeeze(text: str) -> str:
    return _SPACE.sub("", text)


def _special_tokens_present(d: Dialect, vocab: dict) -> int:
    return sum(1 for m in d.special_tokens if m in vocab)


def _vocab(tokenizer: Any) -> dict:
    try:
        return dict(tokenizer.get_vocab())
    except Exception:
        return {}


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def detect(tokenizer: Any, dialects: Sequence[Dialect] | None = None) -> Detection:
    """The dialect the tokenizer's chat template writes (see the module docstring); raises
    DetectionError naming the closest candidates when none matches."""
    dialects = list(dialects) if dialects is not None else registry.all_dialects()
    vocab = _vocab(tokenizer)
    if not has_chat_template(tokenizer):
        return _from_vocab(dialects, vocab)
    calls = PROBE_CALLS
    renders = probe_renders(tokenizer, calls)
    if not renders:  # Llama 3.1's template refuses two calls in a turn
        calls = PROBE_CALLS[:1]
        renders = probe_renders(tokenizer, calls)
    if not renders:
        raise DetectionError("the chat template failed on every probe conversation with tool calls; pass --dialect NAME")
    scored = []
    conversation = renders + [r for r in [_render(tokenizer, _with_result(calls))] if r]
    for d in dialects:
        text = d.render_calls([{"function": {"name": n, "arguments": a}} for n, a in calls], 0, PROBE_TOOLS)
        exact = any(text in r for r in renders)
        loose = exact or any(_squeeze(text) in _squeeze(r) for r in renders)
        if loose:
            present = _special_tokens_present(d, vocab)
            share = present / len(d.special_tokens) if d.special_tokens else 1.0
            scored.append(((exact, _chat_fit(d, conversation), present, share), d))
    if scored:
        # best first: exact over loose, more special tokens present, a larger share of them;
        # then fewer declared (more specific), then by name (aliases of one format: the first)
        scored.sort(key=lambda s: s[1].name)
        scored.sort(key=lambda s: (s[0], -len(s[1].special_tokens)), reverse=True)
        best_score, best = scored[0]
        ties = [d.name for score, d in scored[1:] if score == best_score]
        how = "exactly" if best_score[0] else "up to whitespace"
        reason = (f"its chat template writes the probe's tool calls {how} as {best.name} does, and {best_score[1]} marks of "
                  f"its chat format ({best.chat.family}); {best_score[2]} of {len(best.special_tokens)} of its special tokens are in the vocabulary")
        others = [d.name for _, d in scored[1:]]
        if ties:
            reason += f"; {', '.join(ties)} match equally (the same format)"
        elif others:
            reason += f"; also matching, less closely: {', '.join(others)}"
        return Detection(best, reason)
    derived = derive(tokenizer)
    if derived is not None:
        return derived
    raise DetectionError(_no_match(renders[0], dialects, calls))


def _no_match(render: str, dialects: Sequence[Dialect], probe: Sequence[tuple[str, dict]]) -> str:
    calls = [{"function": {"name": n, "arguments": a}} for n, a in probe]
    close = sorted(((difflib.SequenceMatcher(None, d.render_calls(calls, 0, PROBE_TOOLS), render, autojunk=False).ratio(), d.name)
                    for d in dialects), reverse=True)[:3]
    names = ", ".join(f"{n} ({r:.0%} alike)" for r, n in close)
    return (f"the chat template writes tool calls in no known dialect (closest: {names}); "
            "pass --dialect NAME (`constrained dialects` lists them)")


def _from_vocab(dialects: Sequence[Dialect], vocab: dict) -> Detection:
    """No chat template: the dialects most of whose special tokens the vocabulary has."""
    scored = [((_special_tokens_present(d, vocab), _special_tokens_present(d, vocab) / len(d.special_tokens)), d)
              for d in dialects if d.special_tokens and d.trigger in vocab]
    scored = [s for s in scored if s[0][0]]
    if not scored:
        raise DetectionError("the checkpoint has no chat template and no known dialect's markers among its tokens; pass --dialect NAME")
    best_score = max(s for s, _ in scored)
    best = sorted(d.name for s, d in scored if s == best_score)
    if len(best) > 1:
        raise DetectionError(f"the checkpoint has no chat template, and its special tokens fit several dialects ({', '.join(best)}); pass --dialect NAME")
    return Detection(registry.get(best[0]), f"no chat template: its vocabulary has {best_score[0]} of {best[0]}'s special tokens")


# -- a dialect derived from the template -----------------------------------------------------------------
def derive(tokenizer: Any) -> Detection | None:
    """A json dialect read off the template, when it writes each call as `prefix NAME sep ARGS suffix`
    (ARGS as `json.dumps` writes them) and the calls of a turn one after another: None otherwise."""
    ids = _ID_STYLES[2]
    head = _render(tokenizer, _messages([], ids, "X")[:1], generation_prompt=True)
    plain = _render(tokenizer, _messages([], ids, "X"))
    one = _render(tokenizer, _messages(PROBE_CALLS[:1], ids))
    two = _render(tokenizer, _messages(PROBE_CALLS, ids))
    if not (head and plain and one and two) or not all(t.startswith(head) for t in (plain, one, two)):
        return None
    end = plain[len(head):].split("X", 1)[-1]  # what closes an assistant turn
    turn1, turn2 = one[len(head):], two[len(head):]
    if not (end and turn1.endswith(end) and turn2.endswith(end)):
        return None
    turn1, turn2 = turn1[: len(turn1) - len(end)], turn2[: len(turn2) - len(end)]
    name, args = PROBE_CALLS[0]
    args_text = json.dumps(args, ensure_ascii=False)
    at_name, at_args = turn1.find(name), turn1.find(args_text)
    if at_name < 0 or at_args < at_name + len(name) or not turn2.startswith(turn1):
        return None
    prefix, sep, suffix = turn1[:at_name], turn1[at_name + len(name):at_args], turn1[at_args + len(args_text):]
    second = turn2[len(turn1):]
    n2, a2 = PROBE_CALLS[1]
    call2 = prefix + n2 + sep + json.dumps(a2, ensure_ascii=False) + suffix
    if not (prefix.strip() and second.endswith(call2)):
        return None
    separator = second[: len(second) - len(call2)]

    def lit(s: str) -> str:
        return s.replace("{", "{{").replace("}", "}}")

    vocab = _vocab(tokenizer)
    added = [t for t in getattr(tokenizer, "get_added_vocab", dict)() if t in prefix + sep + suffix]
    try:
        d = Dialect(name="derived", description="derived from the chat template", call_template=lit(prefix) + "{name}" + lit(sep) + "{arguments}" + lit(suffix),
                    call_separator=separator, special_tokens=tuple(t for t in added if t in vocab))
        if d.trigger in ("", "{", "["):
            return None
    except ValueError:
        return None
    return Detection(d, f"derived from chat template: each call is {prefix!r} NAME {sep!r} ARGUMENTS {suffix!r}, calls joined by {separator!r}", derived=True)
