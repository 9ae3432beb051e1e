"""A new dialect is one new file in grammars/ and nothing else.

In a temporary copy of the repository, a file `grammars/toy_calls.py` declares a `Dialect`; the
copy is installed (no dependencies: they are this environment's) and `constrained generate
--dialect toy_calls` and `constrained serve --dialect toy_calls` work with no other edit.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

TOY = '''"""A made-up family: each call an XML-ish element."""

from constrained.dialect import Dialect

TOY_CALLS = Dialect(
    name="toy_calls",
    description="<call name=NAME>{json}</call>, one per line",
    call_template='<call name="{name}">{arguments}</call>',
    call_separator="\\n",
)
'''
PING = {"type": "function", "function": {"name": "ping", "parameters": {"type": "object", "properties": {}}}}


@pytest.fixture(scope="module")
def installed_copy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("new_dialect")
    copy = tmp / "repo"
    ignore = shutil.ignore_patterns(".venv*", ".git", "__pycache__", "*.egg-info", "build", "results", "tests", ".hypothesis")
    shutil.copytree(REPO, copy, ignore=ignore)
    (copy / "grammars" / "toy_calls.py").write_text(TOY, encoding="utf-8")
    site = tmp / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-compile",
                    "--target", str(site), str(copy)], check=True, capture_output=True, cwd=tmp)
    env = {**os.environ, "PYTHONPATH": str(site)}
    return tmp, env


def _run(args, tmp, env, **kw):
    return subprocess.run([sys.executable, "-m", "constrained.cli", *args], cwd=tmp, env=env, capture_output=True, text=True, **kw)


def test_the_copy_is_what_runs(installed_copy):
    tmp, env = installed_copy
    out = _run(["dialects"], tmp, env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "toy_calls" in out.stdout and "kimi_k2" in out.stdout


def test_generate_with_a_new_dialect_file(installed_copy):
    tmp, env = installed_copy
    (tmp / "tools.json").write_text(json.dumps([PING]), encoding="utf-8")
    out = _run(["generate", "--dialect", "toy_calls", "--tools", "tools.json", "--prompt", "Ping it.",
                "--tool-choice", "required", "--no-parallel", "--max-tokens", "32"], tmp, env, timeout=300)
    assert out.returncode == 0, out.stderr
    raw, parsed = out.stdout.split("--- parsed (OpenAI) ---")
    assert '<call name="ping">{}</call>' in raw
    message = json.loads(parsed)["message"]
    assert [c["function"]["name"] for c in message["tool_calls"]] == ["ping"]


def test_serve_with_a_new_dialect_file(installed_copy):
    from openai import OpenAI

    tmp, env = installed_copy
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "constrained.cli", "serve", "--dialect", "toy_calls", "--port", str(port),
                             "--log-level", "warning"], cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0, timeout=60)
        deadline = time.time() + 180
        while True:
            try:
                model = client.models.list().data[0].id
                break
            except Exception:
                if proc.poll() is not None or time.time() > deadline:
                    raise AssertionError(f"the server did not start: {proc.stdout.read() if proc.stdout else ''}") from None
                time.sleep(0.5)
        r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Ping it."}], tools=[PING],
                                           tool_choice="required", parallel_tool_calls=False, max_tokens=32)
        assert model == "constrained-demo-toy_calls"
        assert r.choices[0].finish_reason == "tool_calls"
        assert [c.function.name for c in r.choices[0].message.tool_calls] == ["ping"]
        assert r.choices[0].message.tool_calls[0].function.arguments == "{}"
    finally:
        proc.terminate()
        proc.wait(30)
