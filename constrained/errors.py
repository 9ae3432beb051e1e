"""Errors a request can cause: each says what is wrong and where (the server maps them to 400).

Context is carried in fields, set where it is known: `normalize` knows the keyword and its path,
`prepare_tools` adds which tool it was, the grammar build adds that it was the response format.
"""

from __future__ import annotations

from typing import Literal


class ToolSpecError(ValueError):
    """A request's tools or tool_choice cannot be served. `param` names the request field."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


SchemaSource = Literal["tool", "response_format"]


class UnsupportedSchemaError(ValueError):
    """A schema keyword that can be neither enforced nor checked after decoding (or a schema that
    nothing can match). `keyword` and `path` (`$.properties.x.pattern`) say where; `source`,
    `tool` and `tool_index` say whose schema it was, once known."""

    def __init__(self, keyword: str, path: str, reason: str, *, source: SchemaSource | None = None,
                 tool: str | None = None, tool_index: int | None = None):
        self.keyword = keyword
        self.path = path
        self.reason = reason
        self.source = source
        self.tool = tool
        self.tool_index = tool_index
        super().__init__(self.message)

    @property
    def message(self) -> str:
        core = f"unsupported JSON Schema keyword {self.keyword!r} at {self.path}: {self.reason}"
        if self.source == "response_format":
            return f"response_format: {core}"
        return f"tool {self.tool!r}: {core}" if self.tool is not None else core

    @property
    def param(self) -> str | None:
        """The OpenAI request field the schema came from."""
        if self.source == "response_format":
            return "response_format"
        if self.tool_index is not None:
            return f"tools[{self.tool_index}].function.parameters"
        return None

    def with_context(self, **fields) -> UnsupportedSchemaError:
        """The same error with more context (a new object of the same class)."""
        values = {"source": self.source, "tool": self.tool, "tool_index": self.tool_index, **fields}
        return type(self)(self.keyword, self.path, self.reason, **values)

    def __reduce__(self):  # picklable with its fields (worker processes, vLLM's API servers)
        return (_rebuild, (type(self), self.keyword, self.path, self.reason, self.source, self.tool, self.tool_index))


class UnsatisfiableSchemaError(UnsupportedSchemaError):
    """Keywords that contradict each other (`minimum` > `maximum`, an empty `enum`, a required
    property that cannot appear): no value could match what the schema's author wrote there."""

    @property
    def message(self) -> str:
        core = f"JSON Schema keyword {self.keyword!r} at {self.path} can match nothing: {self.reason}"
        if self.source == "response_format":
            return f"response_format: {core}"
        return f"tool {self.tool!r}: {core}" if self.tool is not None else core


def _rebuild(cls, keyword, path, reason, source, tool, tool_index):
    return cls(keyword, path, reason, source=source, tool=tool, tool_index=tool_index)


class CommandError(Exception):
    """A command-line request that cannot be carried out (a missing file, an unknown dialect):
    `constrained` prints it as one line and exits 1."""


def describe(err: ToolSpecError | UnsupportedSchemaError) -> str:
    """One line naming the problem and where: what the server answers (400) and the CLI prints."""
    if isinstance(err, UnsupportedSchemaError):
        return err.message
    return str(err) if not err.param or err.param in str(err) else f"{err.param}: {err}"


__all__ = ["CommandError", "SchemaSource", "ToolSpecError", "UnsatisfiableSchemaError", "UnsupportedSchemaError", "describe"]
