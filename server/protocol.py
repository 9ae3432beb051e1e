"""Request models and validation for the OpenAI-compatible endpoints.

Requests are validated with pydantic in strict mode (a string is not an integer), unknown top-level
parameters are accepted and ignored (as vLLM does), and every problem becomes an OpenAI error
`{"error": {"message", "type", "param", "code"}}` naming the field (`ApiError`).
"""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from constrained.types import Tool, ToolChoice

MAX_STOP = 4


class ApiError(Exception):
    """An error answered in OpenAI's shape."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def _loc(loc: tuple) -> str:
    """pydantic location -> `messages[0].content` (union branch names dropped)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str):
            # union / tagged-union branch labels are not fields
            if part in ("str", "int", "float", "bool", "list", "dict", "none") or part.startswith(("list[", "dict[", "literal[", "function-", "json-or-python", "lax-or-strict", "union[")) or part[:1].isupper():
                continue
            out += ("." if out else "") + part
    return out


def validation_error(err: ValidationError) -> ApiError:
    """The first pydantic error, as a 400 naming the field."""
    errors = err.errors(include_url=False)
    # the most specific problem: union branches report at several depths, the deepest says most
    first = max(errors, key=lambda e: len(_loc(e.get("loc", ())).replace("[", ".").split(".")) if _loc(e.get("loc", ())) else 0)
    param = _loc(first.get("loc", ())) or None
    msg = first.get("msg", "invalid value").removeprefix("Value error, ")
    if first.get("type") == "missing":
        text = f"missing required parameter: {param!r}"
    elif first.get("type") == "extra_forbidden":
        text = f"unrecognized parameter: {param!r}"
    else:
        shown = repr(first.get("input"))
        if len(shown) > 80:
            shown = shown[:77] + "..."
        text = f"invalid value for {param!r}: {msg} (got {shown})" if param else f"invalid request: {msg}"
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return ApiError(400, text, param=param, code="invalid_value" if first.get("type") != "missing" else "missing_required_parameter")


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


# ---------------------------------------------------------------------------------- messages
class FunctionCallIn(_Model):
    name: str
    arguments: Optional[Union[str, dict]] = None


class ToolCallIn(_Model):
    id: Optional[str] = None
    type: Literal["function"] = "function"
    function: FunctionCallIn
    index: Optional[int] = None  # clients sometimes echo streamed calls back with their index


class Message(_Model):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Optional[Union[str, list[Union[str, dict]]]] = None
    name: Optional[str] = None
    tool_calls: Optional[list[ToolCallIn]] = None
    tool_call_id: Optional[str] = None

    @model_validator(mode="after")
    def _content_required(self):
        if self.role in ("system", "developer", "user") and self.content is None:
            raise ValueError(f"a {self.role} message needs content")
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only assistant messages carry tool_calls")
        return self


# ---------------------------------------------------------------------------------- tools
class FunctionDef(_Model):
    name: str
    description: Optional[str] = None
    parameters: Optional[dict] = None
    strict: Optional[bool] = None


class ToolDef(_Model):
    type: Literal["function"] = "function"
    function: FunctionDef


class NamedFunction(_Model):
    name: str


class NamedToolChoice(_Model):
    type: Literal["function"]
    function: NamedFunction


class JsonSchemaSpec(_Model):
    name: Optional[str] = None
    description: Optional[str] = None
    schema_: Optional[dict] = Field(default=None, alias="schema")
    strict: Optional[bool] = None


class ResponseFormat(_Model):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: Optional[JsonSchemaSpec] = None

    @model_validator(mode="after")
    def _schema_present(self):
        if self.type == "json_schema" and (self.json_schema is None or self.json_schema.schema_ is None):
            raise ValueError("response_format json_schema needs json_schema.schema")
        return self

    def as_dict(self) -> dict:
        out: dict = {"type": self.type}
        if self.json_schema is not None:
            out["json_schema"] = {"name": self.json_schema.name, "schema": self.json_schema.schema_, "strict": self.json_schema.strict}
        return out


class StreamOptions(_Model):
    include_usage: Optional[bool] = None


Stop = Optional[Union[str, list[str]]]


class _Sampling(_Model):
    model: str
    max_tokens: Optional[int] = Field(default=None, ge=1)
    temperature: Optional[float] = Field(default=None, ge=0, le=2)
    top_p: Optional[float] = Field(default=None, gt=0, le=1)
    seed: Optional[int] = None
    stop: Stop = None
    n: Optional[int] = None
    stream: Optional[bool] = False
    stream_options: Optional[StreamOptions] = None
    presence_penalty: Optional[float] = Field(default=None, ge=-2, le=2)  # accepted, not applied
    frequency_penalty: Optional[float] = Field(default=None, ge=-2, le=2)  # accepted, not applied
    logit_bias: Optional[dict[str, Union[int, float]]] = None
    user: Optional[str] = None

    @field_validator("n")
    @classmethod
    def _only_one(cls, v):
        if v is not None and v != 1:
            raise ValueError("only n=1 is supported")
        return v

    @field_validator("stop")
    @classmethod
    def _stop(cls, v):
        if isinstance(v, list):
            if len(v) > MAX_STOP:
                raise ValueError(f"at most {MAX_STOP} stop sequences")
            if any(s == "" for s in v):
                raise ValueError("stop sequences must not be empty")
        elif v == "":
            raise ValueError("stop sequences must not be empty")
        return v

    @field_validator("logit_bias")
    @classmethod
    def _bias(cls, v):
        if v is None:
            return v
        for key, value in v.items():
            if not key.lstrip("-").isdigit():
                raise ValueError(f"logit_bias keys are token ids, got {key!r}")
            if not -100 <= value <= 100:
                raise ValueError(f"logit_bias values must be in [-100, 100], got {value}")
        return v

    def stop_list(self) -> list[str]:
        return [] if self.stop is None else [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_Sampling):
    messages: list[Message] = Field(min_length=1)
    tools: Optional[list[ToolDef]] = None
    tool_choice: Optional[Union[Literal["auto", "none", "required"], NamedToolChoice]] = None
    parallel_tool_calls: Optional[bool] = None
    response_format: Optional[ResponseFormat] = None
    max_completion_tokens: Optional[int] = Field(default=None, ge=1)
    logprobs: Optional[bool] = None
    top_logprobs: Optional[int] = Field(default=None, ge=0, le=20)

    def check(self) -> None:
        """Cross-field rules (after pydantic): raise ApiError naming the field."""
        if self.top_logprobs and not self.logprobs:
            raise ApiError(400, "top_logprobs needs logprobs: true", param="top_logprobs", code="invalid_value")

    def limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def typed_tools(self) -> tuple[Tool, ...]:
        """The request's tools as the library takes them (the typed boundary)."""
        return tuple(Tool(t.function.name, t.function.parameters, t.function.description, t.function.strict) for t in self.tools or [])

    def typed_tool_choice(self) -> ToolChoice:
        tc = self.tool_choice
        if tc is None or isinstance(tc, str):
            return ToolChoice.parse(tc)
        return ToolChoice("named", tc.function.name)

    def message_dicts(self) -> list[dict]:
        out = []
        for m in self.messages:
            d = m.model_dump(exclude_none=True)
            if "content" not in d:
                d["content"] = None
            out.append(d)
        return out


class CompletionRequest(_Sampling):
    prompt: Union[str, list[str], list[int]]
    logprobs: Optional[int] = Field(default=None, ge=0, le=5)
    echo: Optional[bool] = False
    suffix: Optional[str] = None

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, v):
        if isinstance(v, list):
            if not v:
                raise ValueError("prompt must not be empty")
            if isinstance(v[0], str) and len(v) != 1:
                raise ValueError("only one prompt per request is supported")
        return v

    @field_validator("suffix")
    @classmethod
    def _no_suffix(cls, v):
        if v:
            raise ValueError("suffix is not supported")
        return v
