"""Parse model output into OpenAI content, reasoning and tool_calls, whole or as it streams.

One scanner walks the dialect's own pieces (markers, call template, codec) over the text. The
whole-text parse is the scanner run with `final=True`; the streaming parser re-runs it on the text
so far and emits only what grew, so both agree by construction. Its scanner remembers complete
calls and where each call's arguments were read to, so a token costs the same at the end of a long
output as at its start (no rescans of what cannot change). Literals match with whitespace
tolerated between their characters (what servers in the wild accept); arguments are read with
`json` / `ast.literal_eval`, never `eval`.

What the parser does with text that is not a clean call (documented in the README):
- text before the section is `content`; reasoning is the dialect's think block at the start,
  and a call inside an unterminated think block is reasoning, not a call;
- calls that parsed completely are returned even when the section is unterminated;
- text from the first malformed or unfinished call on is appended to `content`;
- pythonic: the output is a call list only when ALL of it parses as one; otherwise it is content.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import dialect as registry
from .codecs import ArgumentScan, skip_ws
from .dialect import Dialect, argument_schemas
from .types import OpenAIToolCall, Tool, as_tools
from .validation import call_violations

_NAME_CHARS = re.compile(r"[A-Za-z0-9_.\-]")


class _Incomplete(Exception):
    """The text ends inside this construct (only an error in final mode)."""


class _Mismatch(Exception):
    """The text is not this construct."""


def _match_literal(text: str, pos: int, lit: str) -> int:
    for ch in lit:
        if ch in " \t\r\n":
            continue
        pos = skip_ws(text, pos)
        if pos >= len(text):
            raise _Incomplete
        if text[pos] != ch:
            raise _Mismatch
        pos += 1
    return pos


def held_back(text: str, markers: Sequence[str]) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of a marker (may grow into it)."""
    best = 0
    for m in markers:
        for k in range(min(len(m) - 1, len(text)), best, -1):
            if text.endswith(m[:k]):
                best = k
                break
    return best


def _settled(text: str, final: bool, markers: Sequence[str] = ()) -> str:
    """What of a growing text can be emitted now: trimmed like the final text will be."""
    if final:
        return text.strip()
    text = text.lstrip()
    text = text[: len(text) - held_back(text, markers)]
    return text.rstrip()


@dataclass
class CallScan:
    name: str
    index: int | None  # the index the model wrote (Kimi), else None
    source: str  # argument source text so far
    complete: bool
    arguments: str = ""  # JSON: final, or a prefix of the final while streaming
    end: int = -1  # where the call's text ends (complete calls)


@dataclass
class Scan:
    reasoning: str | None
    content: str
    calls: list[CallScan] = field(default_factory=list)


class Scanner:
    """Scans a text; kept across scans of a growing text (the streaming parser), it remembers what
    cannot change as the text grows (complete calls, how far each call's arguments were read), so
    each scan costs the same however long the output has grown."""

    def __init__(self, dialect: Dialect, tools: Sequence[Tool | Mapping] | None = None):
        self.d = dialect
        self.codec = dialect.codec
        # Each tool's normalised parameters: the xml encoding reads raw values by them.
        self.schemas = argument_schemas(tools) if tools else {}
        self._complete: dict[int, tuple[CallScan, int]] = {}  # call start -> (the call, its end)
        self._arguments: dict[int, ArgumentScan] = {}  # argument start -> its incremental reader

    # -- one call --------------------------------------------------------------------------------
    def _call(self, text: str, pos: int, out: list[CallScan]) -> int:
        """Match one call at `pos`; append it (possibly partial) to `out`; return the end."""
        if pos in self._complete:
            call, end = self._complete[pos]
            out.append(call)
            return end
        size = len(out)
        try:
            end = self._call_pieces(text, pos, out)
            out[-1].end = end
            self._complete[pos] = (out[-1], end)
            return end
        except _Mismatch:
            del out[size:]  # a call that does not match is not a call
            raise

    def _call_pieces(self, text: str, pos: int, out: list[CallScan]) -> int:
        pieces = self.d.pieces  # type: ignore[attr-defined]
        name, index, call = None, None, None
        for i, piece in enumerate(pieces):
            if isinstance(piece, str):
                pos = _match_literal(text, pos, piece)
                continue
            if piece.name == "arguments":
                start = pos
                if start not in self._arguments:
                    self._arguments[start] = self.codec.scanner(start)
                arguments = self._arguments[start]
                try:
                    end = arguments.end(text)
                except ValueError:
                    raise _Mismatch from None
                call = CallScan(name or "", index, text[start : end if end is not None else len(text)], False)
                out.append(call)
                schema = self.schemas.get(call.name)
                if end is None:
                    call.arguments = arguments.partial_json(call.source, schema)
                    raise _Incomplete
                try:
                    call.arguments = arguments.arguments_text(call.source, schema)
                except (ValueError, SyntaxError, TypeError, RecursionError):
                    raise _Mismatch from None
                pos = end
                continue
            # name or index: read up to the next literal's first visible character (a name right
            # before the arguments: up to the first character a name cannot have)
            follows = pieces[i + 1]
            stop = next((c for c in follows if not c.isspace()), None) if isinstance(follows, str) else None
            pos = skip_ws(text, pos)
            start = pos
            allowed = str.isdigit if piece.name == "index" else (lambda c: bool(_NAME_CHARS.match(c)))
            while pos < len(text) and allowed(text[pos]):
                pos += 1
            after = skip_ws(text, pos) if stop is not None else pos
            if after >= len(text):
                raise _Incomplete
            if pos == start or (stop is not None and text[after] != stop):
                raise _Mismatch
            if piece.name == "name":
                name = text[start:pos]
            else:
                index = int(text[start:pos])
        assert call is not None  # a template has exactly one {arguments}
        call.complete = True
        return pos

    # -- the section -----------------------------------------------------------------------------
    def _section(self, text: str, pos: int, final: bool) -> tuple[list[CallScan], int]:
        """-> (calls, where parsing stopped). A partial last call is kept only while streaming;
        the text from `stop` on is not part of any returned call."""
        d = self.d
        calls: list[CallScan] = []
        start = pos
        try:
            if d.section_begin:
                pos = _match_literal(text, pos, d.section_begin)
            while True:
                start = pos
                if calls and d.section_end:
                    try:
                        return calls, _match_literal(text, pos, d.section_end)
                    except _Mismatch:
                        pass
                try:
                    if calls:
                        pos = _match_literal(text, pos, d.call_separator)
                    pos = self._call(text, pos, calls)
                except _Mismatch:
                    if calls and not d.section_end:
                        return calls, start  # no end marker: the section ends after the last call
                    raise
        except _Incomplete:
            if calls and not calls[-1].complete:
                if not final:
                    return calls, len(text)
                calls.pop()
                return calls, start
            return calls, len(text)  # between calls: an unterminated section still holds its calls
        except _Mismatch:
            return calls, start

    # -- the think block -------------------------------------------------------------------------
    def think_block(self, text: str) -> tuple[int, int, int] | None:
        """The dialect's think block at the start of `text`: (body start, body end, where the rest
        starts); body end and rest are -1 when it is unterminated. None: no think block."""
        d = self.d
        if not d.reasoning:
            return None
        open_, close = d.reasoning
        s = skip_ws(text, 0)
        if not text.startswith(open_, s):
            return None
        body = s + len(open_)
        c = text.find(close, body)
        t = text.find(d.trigger, body) if d.section_ends_reasoning else -1
        if c >= 0 and (t < 0 or c < t):
            return body, c, c + len(close)
        if t >= 0:  # the section ends reasoning (Kimi K2.6)
            return body, t, t
        return body, -1, -1

    # -- whole output ----------------------------------------------------------------------------
    def scan(self, text: str, final: bool) -> Scan:
        d = self.d
        reasoning, rest = None, 0
        block = self.think_block(text)
        if block is not None:
            body, end, rest = block
            if end < 0:  # unterminated: all of it is reasoning, calls inside it are not calls
                hold = [d.reasoning[1]] + ([d.trigger] if d.section_ends_reasoning else [])  # type: ignore[index]
                return Scan(_settled(text[body:], final, hold), "")
            reasoning = text[body:end].strip()
        elif d.reasoning and not final:
            s = skip_ws(text, 0)
            if s < len(text) and d.reasoning[0].startswith(text[s:]):
                return Scan(None, "")  # may be the start of a think block
        if d.calls_are_whole_output:
            return self._whole_output(text, rest, reasoning, final)
        t = text.find(d.trigger, rest)
        if t < 0:
            return Scan(reasoning, _settled(text[rest:], final, [d.trigger]))
        calls, stop = self._section(text, t, final)
        if not calls and final:
            return Scan(reasoning, _settled(text[rest:], final))
        # Text after the calls (or from a malformed one on) is content: nothing is lost.
        content = text[rest:t] + text[stop:] if final else text[rest:t]
        return Scan(reasoning, _settled(content, final), calls)

    def _whole_output(self, text: str, rest: int, reasoning: str | None, final: bool) -> Scan:
        s = skip_ws(text, rest)
        head, tail = self.d.trigger, text[s:]
        if not tail.startswith(head):
            wrapper = self.d.content_wrapper[0] if self.d.content_wrapper else ""
            if not final and (head.startswith(tail) or wrapper.startswith(tail)):
                return Scan(reasoning, "")  # may become either
            return Scan(reasoning, self._content(text[rest:], final))
        calls, stop = self._section(text, s, final)
        if final and not (calls and not text[stop:].strip()):
            return Scan(reasoning, self._content(text[rest:], True))
        return Scan(reasoning, "", calls)

    def _content(self, text: str, final: bool) -> str:
        """Free text of a whole-output dialect, out of its content wrapper if it has one."""
        if self.d.content_wrapper:
            open_, close = self.d.content_wrapper
            s = skip_ws(text, 0)
            if text.startswith(open_, s):
                text = text[s + len(open_):]
                if close and text.rstrip().endswith(close):
                    text = text.rstrip()[: -len(close)]
                return _settled(text, final, [close] if close else [])
        return _settled(text, final)


@dataclass
class ParseResult:
    content: str | None
    reasoning: str | None
    tool_calls: list[OpenAIToolCall]
    # Schema violations of the calls (only when tools were given): what the grammar did not enforce.
    violations: list[str] = field(default_factory=list)
    # Indexes of the calls a token budget closed early: valid, but possibly cut short (a truncated
    # string argument); see constrained.budget.
    truncated: list[int] = field(default_factory=list)

    def message(self) -> dict:
        """An OpenAI assistant message."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.reasoning is not None:
            msg["reasoning_content"] = self.reasoning
        if self.tool_calls:
            msg["tool_calls"] = self.tool_calls
        return msg


def _openai_call(dialect: Dialect, call: CallScan, position: int, first_index: int) -> OpenAIToolCall:
    index = call.index if call.index is not None else first_index + position
    return {
        "id": dialect.make_call_id(call.name, index),
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def parse(
    text: str, dialect: Dialect | str, tools: Sequence[Tool | Mapping] | None = None, first_index: int = 0,
    *, additional_properties: str = "forbid", budget_closed_at: int | None = None, budget_calls: str = "flag",
    think_open: bool = False,
) -> ParseResult:
    """Parse a whole model output. Never raises on malformed text: what is not a call stays content.
    With ``tools``, ``violations`` lists the calls' schema errors (``additional_properties`` as in
    ``GrammarOptions``). ``budget_closed_at``: where in ``text`` a token budget started forcing the
    close (constrained.budget); calls that end after it are flagged in ``truncated``, or left out
    with ``budget_calls="drop"``. ``think_open``: the prompt opened the think block, so ``text``
    starts inside it."""
    d = registry.get(dialect)
    opener = d.reasoning[0] if think_open and d.reasoning else ""
    text = opener + text
    if budget_closed_at is not None:
        budget_closed_at += len(opener)
    scan = Scanner(d, tools).scan(text, final=True)
    cut = [i for i, c in enumerate(scan.calls) if budget_closed_at is not None and c.end > budget_closed_at]
    if budget_calls == "drop":
        scan.calls = [c for i, c in enumerate(scan.calls) if i not in cut]
        cut = []
    calls = [_openai_call(d, c, i, first_index) for i, c in enumerate(scan.calls)]
    result = ParseResult(scan.content or None, scan.reasoning, calls, truncated=cut)
    if tools:
        result.violations = call_violations(calls, as_tools(tools), additional_properties)
    return result


def split_reasoning(text: str, dialect: Dialect | str) -> tuple[str | None, str]:
    """(reasoning, the rest of the text), split where `parse` splits them: the dialect's think block
    at the start (an unterminated one is all reasoning); (None, text) when there is none."""
    block = Scanner(registry.get(dialect)).think_block(text)
    if block is None:
        return None, text
    body, end, rest = block
    if end < 0:
        return text[body:].strip(), ""
    return text[body:end].strip(), text[rest:]


def ends_inside_call(text: str, dialect: Dialect | str) -> bool:
    """Does the text stop inside a tool call? Output that a grammar finished never does: only a cut
    (max_tokens, a stop string) leaves a call open."""
    calls = Scanner(registry.get(dialect)).scan(text, final=False).calls
    return bool(calls) and not calls[-1].complete


def parse_cut_off(text: str, dialect: Dialect | str, first_index: int = 0, tools: Sequence[Tool | Mapping] | None = None, *,
                  think_open: bool = False) -> ParseResult:
    """A response cut short (max_tokens): what a stream would have shown, content and reasoning so
    far and the calls whose arguments are complete, never an unfinished call nor its raw text."""
    seen = StreamingParser(dialect, first_index=first_index, tools=tools, think_open=think_open)
    seen.feed(text)
    calls = []
    for call in seen.tool_calls():
        try:
            complete = isinstance(json.loads(call["function"]["arguments"]), dict)
        except ValueError:
            complete = False
        if not complete:
            break
        calls.append(call)
    return ParseResult(seen.content or None, seen.reasoning or None, calls)


class StreamingParser:
    """Feed text as it is generated; get OpenAI chat.completion.chunk deltas back.

    Each call's first delta carries index, id, type and name (with arguments ""); later deltas carry
    only argument fragments, which join to exactly the final arguments JSON.
    """

    def __init__(self, dialect: Dialect | str, first_index: int = 0, tools: Sequence[Tool | Mapping] | None = None, *,
                 think_open: bool = False):
        self.d = registry.get(dialect)
        self.first_index = first_index
        self.scanner = Scanner(self.d, tools)
        # the prompt opened the think block: the output starts inside it
        self.text = self.d.reasoning[0] if think_open and self.d.reasoning else ""
        self.offset = len(self.text)  # where the output starts in `text`
        self.ends: list[int] = []  # per call: where its text ends in `text` (-1 while open)
        self.content = ""
        self.reasoning = ""
        self.calls: list[dict] = []  # {"id", "name", "arguments"} as emitted so far

    def feed(self, chunk: str) -> list[dict]:
        self.text += chunk
        return self._diff(self.scanner.scan(self.text, final=False))

    def finish(self) -> list[dict]:
        return self._diff(self.scanner.scan(self.text, final=True))

    def _grow(self, old: str, new: str | None) -> str:
        if new and new.startswith(old) and len(new) > len(old):
            return new[len(old) :]
        return ""

    def _diff(self, scan: Scan) -> list[dict]:
        deltas: list[dict] = []
        if more := self._grow(self.reasoning, scan.reasoning):
            self.reasoning += more
            deltas.append({"reasoning_content": more})
        if more := self._grow(self.content, scan.content):
            self.content += more
            deltas.append({"content": more})
        for i, call in enumerate(scan.calls):
            if i >= len(self.ends):
                self.ends.append(-1)
            if call.complete and self.ends[i] < 0:
                self.ends[i] = call.end
            if i >= len(self.calls):
                openai = _openai_call(self.d, call, i, self.first_index)
                self.calls.append({"id": openai["id"], "name": call.name, "arguments": ""})
                deltas.append(
                    {"tool_calls": [{"index": i, "id": openai["id"], "type": "function", "function": {"name": call.name, "arguments": ""}}]}
                )
            if more := self._grow(self.calls[i]["arguments"], call.arguments):
                self.calls[i]["arguments"] += more
                deltas.append({"tool_calls": [{"index": i, "function": {"arguments": more}}]})
        return deltas

    def tool_calls(self) -> list[OpenAIToolCall]:
        return [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in self.calls
        ]
