"""The README's dialect table, written from the declarations (`constrained dialects --markdown`,
`--readme README.md` rewrites the table in place between its markers)."""

from __future__ import annotations

import re
from pathlib import Path

from .. import dialect as registry
from ..dialect import Dialect

BEGIN, END = "<!-- dialect table: written by `constrained dialects --readme README.md` -->", "<!-- end of dialect table -->"
# The README's example: two calls, two calls earlier in the conversation (Kimi's ids count them).
EXAMPLE_TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
]
EXAMPLE_CALLS = [{"function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}},
                 {"function": {"name": "get_time", "arguments": {}}}]


def _code(text: str) -> str:
    """A markdown code span for a table cell (newlines shown as \\n, pipes escaped)."""
    text = text.replace("\n", "\\n").replace("|", "\\|")
    fence = "`" * (max((len(m) for m in re.findall("`+", text)), default=0) + 1)
    pad = " " if fence != "`" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def notes(d: Dialect) -> str:
    """What a reader must know about a dialect beyond its output: what differs from the rest."""
    out = [f"arguments: {d.codec.name}", f"chat format: {d.chat.family}, ends its turn with " + " or ".join(_code(t) for t in d.chat.stop_tokens)]
    if d.max_calls == 1:
        out.append("one call per turn (the format's own limit)")
    if d.calls_are_whole_output:
        out.append("calls or text, not both")
    if d.content_wrapper:
        out.append(f"text in {_code(d.content_wrapper[0])}")
    if d.reasoning:
        out.append(f"reasoning {_code(d.reasoning[0])}…{_code(d.reasoning[1])}")
    if d.call_id != "random":
        out.append("ids " + ("of 9 letters and digits" if d.call_id == "alnum9" else _code(d.call_id)))
    return "; ".join(out)


def markdown_table() -> str:
    lines = ["| dialect | models | output | notes |", "|---|---|---|---|"]
    for d in registry.all_dialects():
        calls = EXAMPLE_CALLS[: d.max_calls or len(EXAMPLE_CALLS)]
        lines.append(f"| `{d.name}` | {d.models or d.description} | {_code(d.render_calls(calls, 2, EXAMPLE_TOOLS))} | {notes(d)} |")
    return "\n".join(lines) + "\n"


def update_readme(path: str | Path) -> bool:
    """Rewrite the table between the markers; True when the file changed."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    new = text[:start] + "\n" + markdown_table() + text[end:]
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text
