"""After decoding: check calls against their tools' schemas with `jsonschema`.

The grammar enforces almost every keyword; what it cannot (see `constrained.schema`) is checked
here and reported, never silently passed.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from .schema import NormalizedSchema, normalize, validate
from .types import Tool

_NORMALIZED: OrderedDict[tuple[str, str], NormalizedSchema] = OrderedDict()
_NORMALIZED_LOCK = threading.Lock()
_NORMALIZED_MAX = 256


def normalized(schema: Any, additional_properties: str = "forbid") -> NormalizedSchema:
    """`normalize`, cached by the schema's JSON text (it is a pure function of it): a server
    validates the calls of the same tools again and again."""
    key = (json.dumps(schema, sort_keys=True, default=str), additional_properties)
    with _NORMALIZED_LOCK:
        hit = _NORMALIZED.get(key)
        if hit is not None:
            _NORMALIZED.move_to_end(key)
            return hit
    result = normalize(schema, additional_properties=additional_properties)
    with _NORMALIZED_LOCK:
        _NORMALIZED[key] = result
        while len(_NORMALIZED) > _NORMALIZED_MAX:
            _NORMALIZED.popitem(last=False)
    return result


def call_violations(tool_calls: Sequence[Mapping], tools: Sequence[Tool], additional_properties: str = "forbid") -> list[str]:
    """One message per problem, naming the call index and the tool; [] when every call is valid.

    ``additional_properties`` is the grammar's policy; it decides only what a schema with no
    arguments (``{"type": "object"}``) accepts. Otherwise the schema's JSON Schema meaning is checked."""
    schemas = {t.name: t.parameters for t in tools}
    problems = []
    for i, call in enumerate(tool_calls):
        fn = call["function"]
        if fn["name"] not in schemas:
            problems.append(f"tool_calls[{i}]: unknown tool {fn['name']!r}")
            continue
        try:
            args = json.loads(fn["arguments"])
        except ValueError as err:
            problems.append(f"tool_calls[{i}] ({fn['name']}): arguments are not JSON: {err}")
            continue
        for message in validate(args, normalized(schemas[fn["name"]], additional_properties)):
            problems.append(f"tool_calls[{i}] ({fn['name']}): {message}")
    return problems
