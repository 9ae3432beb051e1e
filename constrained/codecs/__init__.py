"""Argument codecs: how a dialect writes a call's arguments (JSON object, Python keyword arguments).

A codec owns everything about its encoding, and nothing about markers:
- `encode(arguments, schema)`: the text a model writes for these arguments (renderer), and
  `jinja(arguments)` the same as a Jinja expression (chat templates),
- `scan(text, pos)`: where the arguments that start at `pos` end (parser; None while incomplete),
- `decode(source, schema)` / `arguments_text(source, schema)`: the arguments as a dict / as JSON
  text (parser; `json` / `ast.literal_eval`, never `eval`),
- `partial_json(source, schema)`: a prefix of the final JSON arguments while they stream,
- `ebnf(schema, prefix, literal)`: the grammar rules for arguments matching a normalised schema,
- `name_problems(name, argument_names)`: the tool and argument names it cannot write.

`schema` is the called tool's normalised parameters schema, or None when the tools are not known:
JSON and Python literals carry their types, but an encoding that writes strings raw (`xml`) reads
values by the schema. Codecs register themselves by name (`Dialect(arguments="json")`); a codec
with per-dialect settings (`xml`) is given to the dialect as an instance. See README.md here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ..errors import ToolSpecError

if TYPE_CHECKING:
    from ..ebnf import Fragment

WHITESPACE = " \t\r\n"


def jinja_raw(text: str) -> str:
    """Literal text inside a Jinja template."""
    return "{% raw %}" + text + "{% endraw %}" if text else ""


def skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in WHITESPACE:
        pos += 1
    return pos


OPENERS, CLOSERS = "([{", ")]}"


class Structure:
    """The structural characters of a growing text from `pos` on, outside string literals
    (delimited by any of `quotes`, with backslash escapes). `advance(text)` yields (index,
    character, nesting depth before it) from where the last call stopped, so a text that grows is
    walked once in all (streaming). The one quote/bracket scanner every codec uses."""

    __slots__ = ("pos", "quotes", "depth", "quote", "escaped")

    def __init__(self, pos: int, quotes: str):
        self.pos, self.quotes = pos, quotes
        self.depth, self.quote, self.escaped = 0, "", False

    def advance(self, text: str) -> Iterator[tuple[int, str, int]]:
        while self.pos < len(text):
            j = self.pos
            c = text[j]
            self.pos = j + 1
            if self.quote:
                if self.escaped:
                    self.escaped = False
                elif c == "\\":
                    self.escaped = True
                elif c == self.quote:
                    self.quote = ""
            elif c in self.quotes:
                self.quote = c
            else:
                depth = self.depth
                if c in OPENERS:
                    self.depth += 1
                elif c in CLOSERS:
                    self.depth -= 1
                yield j, c, depth


def structure(text: str, pos: int, quotes: str) -> Iterator[tuple[int, str, int]]:
    """`Structure(pos, quotes).advance(text)`: one walk over a whole text."""
    return Structure(pos, quotes).advance(text)


class ArgumentScan:
    """One call's arguments read as the text grows (the streaming parser keeps one per call):
    where they end (`end`, None while open), the JSON so far (`partial_json`), the final JSON
    (`arguments_text`). This default asks the codec again each time, which any codec supports;
    the built-in codecs resume where they stopped, so each token costs the same however long the
    arguments have grown."""

    def __init__(self, codec: ArgumentCodec, pos: int):
        self.codec, self.pos = codec, pos
        self._final: tuple[str, str] | None = None

    def end(self, text: str) -> int | None:
        return self.codec.scan(text, self.pos)

    def partial_json(self, source: str, schema: dict | None = None) -> str:
        return self.codec.partial_json(source, schema)

    def arguments_text(self, source: str, schema: dict | None = None) -> str:
        """The final JSON, converted once per call (`schema`: the tool's parameters; a call's
        tool, hence its schema, is fixed once its arguments start)."""
        if self._final is None or self._final[0] != source:
            self._final = (source, self.codec.arguments_text(source, schema))
        return self._final[1]


class ArgumentCodec:
    name: str
    # The text that ends a raw value (`</parameter>`), which the demo model's nudge favours; "" for
    # encodings whose values end with their own closers (quotes, brackets).
    value_end: str = ""

    def markup(self) -> tuple[str, ...]:
        """The literals the encoding writes around a value besides `value_end` (`<parameter name=`,
        `">`): the budget's closer writes them to finish a call's arguments. () where values are
        framed by their own quotes and brackets."""
        return ()

    def encode(self, arguments: dict, schema: dict | None = None) -> str:
        raise NotImplementedError

    def scan(self, text: str, pos: int) -> int | None:
        raise NotImplementedError

    def jinja(self, arguments: str) -> str:
        """`encode` as a Jinja expression over `arguments` (a mapping, or the client's JSON text,
        written as it is), for chat templates (`constrained.chat.jinja_chat_template`). The
        default writes JSON."""
        return f"{{{{ {arguments} if {arguments} is string else {arguments} | tojson }}}}"

    @staticmethod
    def jinja_pairs(arguments: str, pair: str, separator: str) -> str:
        """Jinja that writes `pair` (over `k`, `v`) for each argument, `separator` between them;
        the client's text as it is when `arguments` is not a mapping."""
        return (f"{{% if {arguments} is mapping %}}{{% for k, v in {arguments}.items() %}}{{% if not loop.first %}}{separator}"
                f"{{% endif %}}{pair}{{% endfor %}}{{% else %}}{{{{ {arguments} }}}}{{% endif %}}")

    def decode(self, source: str, schema: dict | None = None) -> dict:
        raise NotImplementedError

    def arguments_text(self, source: str, schema: dict | None = None) -> str:
        """The final arguments as JSON text (what OpenAI's `function.arguments` carries)."""
        raise NotImplementedError

    def partial_json(self, source: str, schema: dict | None = None) -> str:
        """A prefix of the final JSON arguments, from the source written so far (streaming)."""
        raise NotImplementedError

    def scanner(self, pos: int) -> ArgumentScan:
        """An incremental reader of the arguments that start at `pos` (streaming)."""
        return ArgumentScan(self, pos)

    def ebnf(self, schema: dict, prefix: str, literal: Callable[[str], str] | None = None) -> Fragment:
        """Rules for arguments matching `schema`; `literal` writes the codec's own markup (it
        forces the special tokens in it)."""
        raise NotImplementedError

    def name_problems(self, name: str, argument_names: list[str]) -> list[str]:
        """What about these names this encoding cannot write ([] when all is well)."""
        return []

    def check_names(self, name: str, argument_names: list[str], param: str) -> None:
        problems = self.name_problems(name, argument_names)
        if problems:
            raise ToolSpecError(f"{problems[0]}, so the {self.name} argument encoding cannot write it", param)


_CODECS: dict[str, ArgumentCodec] = {}


def register_codec(codec: ArgumentCodec) -> ArgumentCodec:
    _CODECS[codec.name] = codec
    return codec


def get_codec(name: str) -> ArgumentCodec:
    try:
        return _CODECS[name]
    except KeyError:
        raise ValueError(f"unknown argument codec {name!r}; known: {sorted(_CODECS)}") from None


def _load_builtin() -> None:
    # the built-in codecs register themselves on import (they import this module's base class)
    from . import json, python, xml  # noqa: F401


_load_builtin()


def codec_names() -> list[str]:
    return sorted(_CODECS)


__all__ = ["ArgumentCodec", "ArgumentScan", "Structure", "WHITESPACE", "codec_names", "get_codec", "jinja_raw", "register_codec", "skip_ws",
           "structure"]
