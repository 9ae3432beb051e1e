"""Coverage targets on a fixed corpus sample, and the tool linter."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest

from constrained import dialect as registry
from constrained.tools.check_tools import check_tools
from constrained.tools.cli import add_coverage_command
from constrained.tools.coverage import corpus_files, format_coverage_table, run_coverage

CORPUS = Path(os.environ.get("CONSTRAINED_MASKBENCH") or Path(__file__).resolve().parents[2] / "shared" / "data" / "maskbench")
# Every 65th file of the sorted corpus: 60 files spread over every prefix, fixed.
SAMPLE_EVERY = 65


@pytest.fixture(scope="module")
def sample_result():
    return run_coverage(CORPUS, sample=SAMPLE_EVERY, strict_xgrammar_baseline=False, progress=False)


def test_sample_spans_the_corpus():
    names = [p.name for p in corpus_files(CORPUS, sample=SAMPLE_EVERY)]
    assert len(names) == 60
    prefixes = {n.split("---")[0].split("_")[0] for n in names}
    assert {"BFCL", "Glaiveai2K", "Github", "Handwritten", "Synthesized", "JME", "MCPspec"} <= prefixes


def test_every_schema_compiles_or_gets_a_named_error(sample_result):
    r = sample_result
    assert r["schemas"] == 60
    assert r["compiled"] + sum(r["errors"].values()) == r["schemas"]
    assert r["compiled"] >= 59


def test_valid_instances_are_accepted(sample_result):
    r = sample_result
    assert r["valid"] > 45
    assert r["valid_accepted"] >= 0.995 * r["valid"], r["examples"]["valid_rejected"]


def test_invalid_instances_are_rejected_or_accounted_for(sample_result):
    r = sample_result
    assert r["invalid"] > 25
    assert r["invalid_rejected"] >= 0.95 * r["invalid"]
    assert r["unexplained"] == 0, r["examples"]["unexplained"]
    assert r["invalid_rejected"] + sum(r["unenforced"].values()) + r["label_disagrees"] == r["invalid"]


def test_schema_policy_accepts_every_valid_instance_and_accounts_for_invalid_ones(sample_result):
    r = sample_result["schema_policy"]
    assert r["additional_properties"] == "schema" and sample_result["additional_properties"] == "forbid"
    assert r["schemas"] == 60 and r["compiled"] >= 59
    assert r["valid_accepted"] >= 0.995 * r["valid"], r["examples"]["valid_rejected"]
    assert r["unexplained"] == 0
    assert r["invalid_rejected"] + sum(r["unenforced"].values()) + r["label_disagrees"] == r["invalid"]


def test_compile_times_are_measured_cold_and_warm(sample_result):
    for r in (sample_result, sample_result["schema_policy"]):
        assert 0 < r["warm_compile_ms_p50"] <= r["warm_compile_ms_p99"]
    assert 0 < sample_result["compile_ms_p50"] <= sample_result["compile_ms_p99"]
    assert sample_result["schema_policy"]["compile_ms_p50"] is None  # cold is not measured for it


def test_schema_that_breaks_xgrammars_rule_cache_is_compiled_without_it():
    r = run_coverage(files=[CORPUS / "Github_trivial---o9840.json"], strict_xgrammar_baseline=False, progress=False)
    assert r["compiled"] == 1 and r["schema_policy"]["compiled"] == 1, r["examples"]["errors"]


def test_draft4_integer_is_not_an_integral_float():
    """o14485 declares draft-04, where 12345.0 is not an integer (from draft 6 on it is, and a model
    writes it as 12345). The harness writes it as it is, 12345.0, and the grammar rejects it."""
    r = run_coverage(files=[CORPUS / "Github_trivial---o14485.json"], strict_xgrammar_baseline=False, progress=False)
    assert r["label_disagrees"] == 0 and r["unexplained"] == 0
    assert r["invalid_rejected"] == r["invalid"] == 1 and r["valid_accepted"] == r["valid"] > 0


def test_pattern_property_values_stay_valid_under_the_schema_policy():
    """o85971: patternProperties ".*" string; xgrammar would let an extra key take any value."""
    r = run_coverage(files=[CORPUS / "Github_trivial---o85971.json"], strict_xgrammar_baseline=False, progress=False)
    for result in (r, r["schema_policy"]):
        assert result["unexplained"] == 0 and result["invalid_rejected"] == result["invalid"] > 0


def test_report_table_names_every_pipeline(sample_result):
    table = format_coverage_table({**sample_result, "baseline": sample_result})
    assert "| valid instances accepted |" in table
    assert "ours, `forbid` (tool default) | ours, `schema` | raw xgrammar" in table
    assert "warm compiler" in table


def test_cli_prints_one_json_object(capsys):
    parser = argparse.ArgumentParser()
    add_coverage_command(parser.add_subparsers())
    args = parser.parse_args(["coverage", str(CORPUS), "--json", "--sample", "400", "--no-baseline", "--no-length-costs"])
    assert args.func(args) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("schemas", "compiled", "errors", "valid", "valid_accepted", "invalid", "invalid_rejected",
                "unenforced", "unexplained", "compile_ms_p50", "compile_ms_p99", "warm_compile_ms_p50"):
        assert key in result


def _tool(name, parameters):
    return {"type": "function", "function": {"name": name, "description": "d", "parameters": parameters}}


def test_check_tools_flags_pythonic_names_and_unsupported_keywords():
    tools = [
        _tool("get_weather", {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        _tool("get-weather", {"type": "object", "properties": {"from": {"type": "string"}}}),
        _tool("fetch", {"type": "object", "properties": {"x": {"$ref": "https://example.com/x.json"}}}),
        _tool("tag", {"type": "array", "items": {}, "uniqueItems": True}),
        _tool("bad name!", {}),
    ]
    good, dashed, remote, unique, bad = check_tools(tools)

    assert good["ok"] and good["compiled"] and good["compile_ms"] > 0 and good["problems"] == {}

    assert dashed["compiled"] and not dashed["ok"]
    # every dialect with Python-call arguments, and no other
    python_dialects = {n for n in registry.names() if registry.get(n).codec.name == "python"}
    assert "pythonic" in python_dialects and set(dashed["problems"]) == python_dialects
    assert any("get-weather" in p for p in dashed["problems"]["pythonic"])
    assert any("from" in p for p in dashed["problems"]["pythonic"])

    assert not remote["compiled"] and not remote["ok"]
    assert "'$ref'" in remote["error"] and "$.properties.x.$ref" in remote["error"] and "fetch" in remote["error"]

    assert unique["ok"] and unique["unenforced"] == ["uniqueItems at $.uniqueItems"]

    assert set(bad["problems"]) == set(registry.names())  # every dialect: not an OpenAI name


def test_check_tools_follows_the_policy_it_is_given():
    tool = _tool("lookup", {"type": "object", "properties": {"q": {"type": "string"}}})
    (forbid,) = check_tools([tool], dialects=["hermes"])
    (schema,) = check_tools([tool], dialects=["hermes"], additional_properties="schema")
    assert forbid["ok"] and schema["ok"] and schema["compile_ms"] > 0


def test_check_tools_rejects_unknown_dialects():
    with pytest.raises(ValueError):
        check_tools([], dialects=["nope"])


def test_check_tools_reports_unsatisfiable_schemas_and_slow_regexes():
    tools = [
        _tool("window", {"type": "object", "properties": {"from": {"type": "integer", "minimum": 9, "maximum": 1}}}),
        _tool("pick", {"type": "object", "properties": {"a": {}}, "required": ["b"]}),
        _tool("match", {"type": "object", "properties": {"s": {"type": "string", "pattern": "^(?=x)"}}}),
        _tool("fine", {"type": "object", "properties": {"a": {}}, "required": ["b"]}),
    ]
    window, pick, match = check_tools(tools[:3], dialects=["hermes"])
    assert not window["ok"] and "can match nothing" in window["error"] and "'minimum' at $.properties.from" in window["error"]
    assert not pick["ok"] and "'required' at $.required" in pick["error"] and "'b'" in pick["error"]
    assert not match["ok"] and "'pattern' at $.properties.s.pattern" in match["error"] and "linear time" in match["error"]
    (fine,) = check_tools(tools[3:], dialects=["hermes"], additional_properties="schema")  # undeclared names may appear
    assert fine["ok"]


def _corpus(folder, files):
    for name, content in files.items():
        (folder / name).write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return folder


_QUICK = {"schema": {"type": "object", "properties": {"a": {"type": "integer"}}}, "tests": [
    {"data": {"a": 1}, "valid": True}, {"data": {"a": "x"}, "valid": False}]}
def test_one_schema_cannot_stall_a_corpus(tmp_path, capsys):
    """A deep generated config schema takes ~1.9 s to compile cold (5,900 rules; the corpus' slowest,
    testwp9, took ~30 s before open objects' extra keys were guarded, 0.45 s since): stopped at the
    limit, the run goes on."""
    from benchmarks.large_schemas import configs

    slow = {"schema": configs(0), "tests": [{"data": {}, "valid": False}, {"data": {"x": 1}, "valid": False}]}
    folder = _corpus(tmp_path, {"a_slow.json": slow, "b_quick.json": _QUICK})
    r = run_coverage(folder, timeout_s=0.5, strict_xgrammar_baseline=False, schema_policy=False, progress=True)
    assert r["schemas"] == 2 and r["compiled"] == 1 and r["errors"] == {"timeout": 1}
    error = r["examples"]["errors"][0]["error"]
    assert "a_slow.json (forbid)" in error and "0.5 s" in error
    assert r["invalid_skipped"] == len(slow["tests"])
    assert r["valid_accepted"] == r["valid"] == 1 and r["invalid_rejected"] == 1
    assert r["run"]["timeout_s"] == 0.5
    assert "b_quick.json" in capsys.readouterr().err  # the progress bar names the file being processed


def test_any_input_folder_ends_in_named_errors(tmp_path):
    folder = _corpus(tmp_path, {
        "not_json.json": "{oops", "no_schema.json": {"tests": []}, "bad_tests.json": {"schema": {}, "tests": [{"data": 1}]},
        "list.json": [1, 2], "bad_ref.json": {"schema": {"properties": {"x": {"$ref": "#/nope"}}}, "tests": [{"data": {}, "valid": True}]},
        "anchor_ref.json": {"schema": {"type": "object", "properties": {"x": {"$ref": "#a"}}, "$defs": {"a": {"$anchor": "a", "type": "integer"}}},
                            "tests": [{"data": {"x": 1}, "valid": True}, {"data": {"x": "1"}, "valid": False}]},
        "quick.json": _QUICK})
    r = run_coverage(folder, progress=False)  # the raw-xgrammar baseline too: it reads the raw refs
    for result in (r, r["schema_policy"], r["baseline"]):
        assert result["schemas"] == 7
        assert result["compiled"] + sum(result["errors"].values()) == 7
    assert r["errors"] == {"unreadable": 4, "$ref": 1} and r["compiled"] == 2
    assert r["valid_accepted"] == r["valid"] == 2 and r["invalid_rejected"] == r["invalid"] == 2
    assert {e["file"] for e in r["examples"]["errors"]} == {"not_json.json", "no_schema.json", "bad_tests.json", "list.json", "bad_ref.json"}


def test_length_costs_compare_the_three_constructions():
    from constrained.tools.coverage import default_tokenizer_info, format_length_costs, measure_length_costs

    rows = measure_length_costs(default_tokenizer_info(), bounds=(8,))
    assert [r["construction"] for r in rows] == ["ours", "xgrammar", "decomposed"]
    assert all(r["accepted"] and r["compile_ms"] > 0 and r["tokens"] > 1 for r in rows)
    assert "| 8 | ours |" in format_length_costs(rows)


def test_generated_real_world_shapes_are_labelled_by_jsonschema_and_covered(tmp_path):
    """The shapes generator (compose, kubernetes, package, nested ids, draft 4): labels come from
    jsonschema under each document's draft, and the grammar accepts every valid instance."""
    import jsonschema

    from constrained.schema.validate import _validator
    from constrained.tools.shapes import SHAPES, write_corpus

    files = write_corpus(tmp_path, seed=7, per_shape=1)
    assert sorted(p.name.split("---")[0] for p in files) == sorted(SHAPES)
    for path in files:
        doc = json.loads(path.read_text(encoding="utf-8"))
        cls = jsonschema.validators.validator_for(doc["schema"])
        assert sum(t["valid"] for t in doc["tests"]) >= 3 and sum(not t["valid"] for t in doc["tests"]) >= 3, path.name
        for test in doc["tests"]:
            assert cls(doc["schema"], format_checker=_validator()[1]).is_valid(test["data"]) == test["valid"], (path.name, test)
    r = run_coverage(tmp_path, strict_xgrammar_baseline=False, schema_policy=False, progress=False)
    assert r["compiled"] == len(files) and r["valid_accepted"] == r["valid"]
    assert r["unexplained"] == 0 and r["invalid_rejected"] + sum(r["unenforced"].values()) == r["invalid"]
