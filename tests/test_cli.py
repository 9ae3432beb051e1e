"""The command line: a problem with the request is one line naming it (the server's text) and exit
status 1; a usage error is the subcommand's usage and exit status 2; --help imports nothing heavy."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from constrained import dialect as registry
from constrained.errors import UnsupportedSchemaError, describe
from constrained.grammar import prepare_tools

BAD_SCHEMA = {"type": "object", "properties": {"x": {"$ref": "http://example.com/x.json"}}}
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "constrained.cli", *args], capture_output=True, text=True, timeout=timeout)


def one_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_help_imports_nothing_heavy():
    code = ("import sys, time; t = time.perf_counter()\n"
            "from constrained.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(time.perf_counter() - t, sorted(m for m in ('torch', 'transformers', 'xgrammar', 'numpy', 'jsonschema', 'fastapi', 're2') if m in sys.modules))")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    seconds, heavy = out.stdout.strip().splitlines()[-1].split(" ", 1)
    print(f"constrained --help: {float(seconds):.3f} s in-process, {time.perf_counter() - t0:.2f} s with the interpreter")
    assert heavy == "[]", heavy  # torch & co load when a command runs, never for --help


@pytest.fixture
def files(tmp_path):
    def write(name, data):
        path = tmp_path / name
        path.write_text(json.dumps(data))
        return str(path)

    return write


def test_unknown_dialect_missing_file_and_not_json(files, tmp_path):
    tools = files("tools.json", [WEATHER])
    line = one_line(proc := cli("generate", "--dialect", "nope", "--tools", tools, "--prompt", "x"))
    assert proc.returncode == 1 and "unknown dialect 'nope'" in line and line.startswith("constrained generate: error:")
    line = one_line(proc := cli("generate", "--dialect", "hermes", "--tools", str(tmp_path / "missing.json"), "--prompt", "x"))
    assert proc.returncode == 1 and "cannot read the tools file" in line and "missing.json" in line
    (tmp_path / "broken.json").write_text("{oops")
    line = one_line(proc := cli("check-tools", str(tmp_path / "broken.json")))
    assert proc.returncode == 1 and "not JSON" in line and "broken.json" in line


def test_bad_schema_and_unknown_tool_say_what_the_server_says(files):
    tools = files("tools.json", [WEATHER, {"type": "function", "function": {"name": "fetch", "parameters": BAD_SCHEMA}}])
    with pytest.raises(UnsupportedSchemaError) as info:
        prepare_tools(registry.get("hermes"), json.loads(open(tools).read()))
    line = one_line(proc := cli("generate", "--dialect", "hermes", "--tools", tools, "--prompt", "x"))
    assert proc.returncode == 1 and line == f"constrained generate: error: {describe(info.value)}"
    tools = files("one.json", [WEATHER])
    line = one_line(proc := cli("generate", "--dialect", "hermes", "--tools", tools, "--prompt", "x", "--tool-choice", "nope"))
    assert proc.returncode == 1 and "'nope'" in line
    line = one_line(proc := cli("generate", "--dialect", "hermes", "--tools", tools, "--prompt", "x", "--tool-choice", "required", "--max-tokens", "3"))
    assert proc.returncode == 1 and "--max-tokens is 3" in line


def test_usage_errors_exit_2_with_the_subcommands_usage(files):
    proc = cli("generate", "--dialect", "hermes", "--tools", files("t.json", [WEATHER]))  # no --prompt
    assert proc.returncode == 2 and proc.stderr.startswith("usage: constrained generate") and "--prompt" in proc.stderr
    proc = cli("generate", "--dialect", "hermes", "--tools", "t.json", "--prompt", "x", "--max-tokens", "0")
    assert proc.returncode == 2 and proc.stderr.startswith("usage: constrained generate") and "--max-tokens must be at least 1" in proc.stderr
    proc = cli("serve", "--max-batch", "0")
    assert proc.returncode == 2 and proc.stderr.startswith("usage: constrained serve")
    proc = cli("serve", "--grammar-cache-mb", "0")
    assert proc.returncode == 2 and "--grammar-cache-mb must be > 0" in proc.stderr
    proc = cli("frobnicate")
    assert proc.returncode == 2 and proc.stderr.startswith("usage: constrained")


def test_serve_freezes_start_up_objects_out_of_the_collectors_walks():
    """`constrained serve` freezes what start-up made (server.memory.freeze_start_up_heap): a full
    collection then walks only what was made since, and what was frozen is still alive."""
    import gc

    from constrained.server.memory import freeze_start_up_heap

    kept = [[i] for i in range(1000)]
    try:
        frozen = freeze_start_up_heap()
        assert frozen >= len(kept) and gc.get_freeze_count() == frozen
        walked = {id(o) for o in gc.get_objects()}
        assert not any(id(k) in walked for k in kept)
        assert [k[0] for k in kept] == list(range(1000))
    finally:
        gc.unfreeze()  # the rest of the test session as it was
    assert gc.get_freeze_count() == 0
