"""Schemas that reach the real server (uvicorn on 127.0.0.1, the official SDK): a `$ref` that
cannot be resolved is a 400 naming the `$ref` and its path, never a 500; the shapes issue 17 fixed
compile and serve; long string bounds and open objects' extra keys are kept while decoding."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest
from openai import OpenAI

from constrained.server.testing import DemoServer

MSGS = [{"role": "user", "content": "hi"}]


def tool(name, parameters):
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


@pytest.fixture(scope="module")
def client():
    server = DemoServer("hermes")
    yield OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0), server.model
    server.close()


BROKEN_ID = {"type": "object", "definitions": {"cvars": {"type": "string"}}, "properties": {"x": {
    "$id": "/properties/x", "type": "array", "items": {"$ref": "#/definitions/cvars"}}}}


@pytest.mark.parametrize(("parameters", "path"), [
    (BROKEN_ID, "$.properties.x.items.$ref"),
    ({"type": "object", "properties": {"y": {"$ref": "#anchor-nowhere"}}}, "$.properties.y.$ref"),
    ({"type": "object", "properties": {"z": {"$ref": "#/properties/z/items"}}}, "$.properties.z.$ref"),
])
def test_unresolvable_ref_is_a_400_naming_it(client, parameters, path):
    sdk, model = client
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(model=model, messages=MSGS, tools=[tool("ok", {"type": "object"}), tool("bad", parameters)])
    error = info.value.body
    assert info.value.status_code == 400
    assert error["param"] == "tools[1].function.parameters" and error["code"] == "unsupported_schema"
    assert "'$ref'" in error["message"] and path in error["message"] and "'bad'" in error["message"]


def test_unresolvable_ref_in_response_format_is_a_400(client):
    sdk, model = client
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(model=model, messages=MSGS, response_format={
            "type": "json_schema", "json_schema": {"name": "r", "schema": BROKEN_ID}})
    assert info.value.body["param"] == "response_format" and "$.properties.x.items.$ref" in info.value.body["message"]


def test_shapes_issue_17_fixed_are_served(client):
    """Draft-4 ref siblings, nested $id bases, big integers and escaped short strings all compile."""
    sdk, model = client
    tools = [
        tool("draft4", {"$schema": "http://json-schema.org/draft-04/schema#", "type": "object", "required": ["d"],
                        "properties": {"d": {"$ref": "#/definitions/d", "type": "object"}}, "definitions": {"d": {"type": "string"}}}),
        tool("ids", {"$id": "https://example.com/t.json", "type": "object", "properties": {"a": {"$ref": "item.json"}},
                     "$defs": {"i": {"$id": "item.json", "type": "integer", "minimum": -(2**70)}}}),
        tool("short", {"type": "object", "properties": {"s": {"type": "string", "minLength": 1, "maxLength": 8}}, "required": ["s"]}),
    ]
    # An integer bound beyond int64 compiles unenforced (xgrammar refuses such bounds): it is
    # checked after decoding, so a value past it is reported, never passed on silently.
    from constrained.schema import normalize

    assert [u.keyword for u in normalize(tools[1]["function"]["parameters"]).unenforced] == ["minimum"]
    reported = {"ids": "is less than the minimum of -1180591620717411303424"}
    for choice in ("draft4", "ids", "short"):
        r = sdk.chat.completions.create(model=model, messages=MSGS, tools=tools, max_tokens=300,
                                        tool_choice={"type": "function", "function": {"name": choice}})
        assert r.choices[0].finish_reason == "tool_calls", choice
        call = r.choices[0].message.tool_calls[0]
        assert call.function.name == choice
        violations = r.model_extra["constrained"]["violations"]
        assert all(reported.get(choice, "\0") in v for v in violations), (choice, violations)
        if choice == "ids" and json.loads(call.function.arguments).get("a", 0) < -(2**70):
            assert violations, "a value past the unenforced bound is reported"



def test_long_string_bounds_are_enforced_while_decoding(client):
    """Bounds above the chain limit are counted at run time (constrained.lengths): the random model
    writes strings until the budget or the bound stops it, never past it."""
    sdk, model = client
    long = tool("note", {"type": "object", "properties": {"title": {"type": "string", "minLength": 12, "maxLength": 40},
                                                          "lines": {"type": "array", "items": {"type": "string", "maxLength": 20}}},
                         "required": ["title", "lines"]})
    for max_tokens in (60, 300):
        r = sdk.chat.completions.create(model=model, messages=MSGS, tools=[long], max_tokens=max_tokens, tool_choice="required")
        args = json.loads(r.choices[0].message.tool_calls[0].function.arguments)
        assert 12 <= len(args["title"]) <= 40 and all(len(line) <= 20 for line in args["lines"]), args
        assert r.model_extra["constrained"]["violations"] == []


def test_open_objects_with_many_names_keep_extra_keys_apart(client):
    """An open object with many declared names (its extra keys kept apart from them), through the
    real server with the random model: every call's arguments validate, and no declared name is
    written twice (as a property or as an extra key), at several budgets. An extra key may repeat:
    nothing counts extra keys (README: open objects), and the random model wrote `"../"` twice."""
    names = ["title", "description", "assignee", "milestone", "labels", "priority", "estimate", "reviewer"]
    parameters = {"type": "object", "properties": {n: {"type": "string"} for n in names},
                  "additionalProperties": {"type": "integer"}, "required": ["title"]}
    for max_tokens in (40, 120, 300):
        r = client[0].chat.completions.create(model=client[1], messages=MSGS, tools=[tool("file_issue", parameters)],
                                              max_tokens=max_tokens, tool_choice="required")
        text = r.choices[0].message.tool_calls[0].function.arguments
        pairs = json.loads(text, object_pairs_hook=list)
        declared = [k for k, _ in pairs if k in names]
        assert len(set(declared)) == len(declared), text
        jsonschema.validate(dict(pairs), parameters)
        assert r.model_extra["constrained"]["violations"] == []
