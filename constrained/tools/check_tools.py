"""Lint OpenAI tool definitions before deploying them: does each
compile, in how long, what is checked only after decoding, and which names a dialect cannot write."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import dialect as registry
from ..errors import ToolSpecError
from ..grammar import argument_names
from ..schema import UnsupportedSchemaError, normalize
from ..types import Tool


def check_tools(
    tools: list[dict],
    *,
    dialects: Iterable[str] | None = None,
    tokenizer_info: Any = None,
    additional_properties: str = "forbid",
) -> list[dict]:
    """Lint OpenAI-style tools: does each compile, in how long, what is unenforced, and which
    names a dialect cannot carry. One dict per tool; ``ok`` is False when anything is wrong."""
    import xgrammar

    from .coverage import default_tokenizer_info

    chosen = [registry.get(name) for name in dialects] if dialects is not None else registry.all_dialects()
    compiler = xgrammar.GrammarCompiler(tokenizer_info or default_tokenizer_info(), cache_enabled=False)
    return [_check_tool(tool, i, chosen, compiler, additional_properties) for i, tool in enumerate(tools)]


def _check_tool(tool: Any, index: int, dialects: list[registry.Dialect], compiler: Any, additional_properties: str) -> dict:
    from .coverage import _compile, _xgrammar_error

    report: dict[str, Any] = {"name": None, "compiled": False, "error": None, "compile_ms": None,
                              "unenforced": [], "problems": {}}
    try:
        typed = Tool.from_openai(tool, index)
    except ToolSpecError as exc:
        report["error"] = str(exc)
        report["ok"] = False
        return report
    report["name"] = typed.name
    try:
        normalized = normalize(typed.parameters, additional_properties=additional_properties)
        _, report["compile_ms"] = _compile(compiler, normalized.schema)
        report["compiled"] = True
        report["unenforced"] = [f"{u.keyword} at {u.path}" for u in normalized.unenforced]
    except UnsupportedSchemaError as exc:
        report["error"] = str(exc.with_context(source="tool", tool=typed.name, tool_index=index))
    except RuntimeError as exc:  # xgrammar raises plain RuntimeErrors
        report["error"] = f"tool {typed.name!r}: xgrammar cannot compile the parameters: {_xgrammar_error(exc)}"
    except Exception as exc:  # noqa: BLE001 - a bug of ours: reported for this tool, the others go on
        report["error"] = f"tool {typed.name!r}: internal error: {type(exc).__name__}: {exc}"
    for d in dialects:
        problems = d.name_problems(typed.name, argument_names(typed.parameters))
        if problems:
            report["problems"][d.name] = problems
    report["ok"] = report["compiled"] and not report["problems"]
    return report
