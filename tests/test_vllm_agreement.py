"""vLLM's own tool parsers as an independent judge of our dialects.

For every dialect that vLLM 0.32 also has (same `--tool-call-parser` name; `mistral_v11` is vLLM's
`mistral` parser given a v11 vocabulary), the random demo model writes outputs under our grammar
(tool_choice required and auto, tools drawn from the corpus), and vLLM's parser of that name,
run by `scripts/vllm_judge.py` in the vLLM environment, must extract the same calls (names, and
arguments equal as JSON) as our parser. A disagreement must be one of the KNOWN divergences below,
each a documented fault or limit of vLLM's parser; anything else fails.

The vLLM environment is `.venv-vllm` at the repository root (scripts/install-vllm.sh), or the
Python named by CONSTRAINED_VLLM_PYTHON. Without one the test is skipped, unless
CONSTRAINED_REQUIRE_VLLM=1 (CI), where a missing environment is a failure.
CONSTRAINED_VLLM_SAMPLES (default 16) is the number of outputs per mode and dialect;
CONSTRAINED_VLLM_DIALECTS (comma-separated) judges only those dialects; CONSTRAINED_VLLM_REPORT
names a file for the per-dialect counts (JSON).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from corpus import tools_for
from helpers import Row, sample_rows

from constrained import dialect as registry
from constrained import parse

REPO = Path(__file__).resolve().parents[1]
JUDGE = REPO / "scripts" / "vllm_judge.py"
PER_MODE = int(os.environ.get("CONSTRAINED_VLLM_SAMPLES", "16"))
VLLM_NAMES = {"mistral_v11": "mistral"}  # our name -> vLLM's, where they differ
EXTRA_VOCAB = {"mistral_v11": ["[ARGS]"]}  # what makes vLLM's mistral parser take the v11 form


def vllm_python() -> str:
    explicit = os.environ.get("CONSTRAINED_VLLM_PYTHON")
    path = Path(explicit) if explicit else REPO / ".venv-vllm" / "bin" / "python"
    if not path.exists():
        message = f"no vLLM environment at {path} (scripts/install-vllm.sh makes one; or set CONSTRAINED_VLLM_PYTHON)"
        if os.environ.get("CONSTRAINED_REQUIRE_VLLM") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return str(path)


def run_judge(python: str, payload: dict | None, *args: str):
    out = subprocess.run([python, str(JUDGE), *args], input=json.dumps(payload) if payload else "", capture_output=True,
                         text=True, timeout=1800, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


# -- known divergences: where vLLM's parser is wrong or reads less than the format allows ------------
@dataclass(frozen=True)
class Divergence:
    dialects: frozenset[str]
    reason: str
    applies: Callable[[dict], bool]  # the case: {"text", "tools", "ours", "theirs"}


def _has(text: str, *needles: str) -> bool:
    return any(n in text for n in needles)


def _args_text(case: dict) -> str:
    return json.dumps([c["arguments"] for c in case["ours"]], ensure_ascii=False)


KNOWN: list[Divergence] = [
    Divergence(frozenset({"phi4_mini_json"}),
               "vLLM's phi4_mini_json regex `functools\\[(.*?)\\]` stops at the first `]`, so a call whose arguments hold a `]` "
               "(any array) is lost, and with it every call of the output",
               lambda c: "]" in _args_text(c)),
]


def explain(dialect: str, case: dict) -> str | None:
    for known in KNOWN:
        if dialect in known.dialects and known.applies(case):
            return known.reason
    return None


def _calls(result) -> list[dict]:
    return [{"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])} for c in result.tool_calls]


def test_vllm_parsers_agree_with_ours(demo_models):
    python = vllm_python()
    theirs_names = set(run_judge(python, None, "--list"))
    shared = [n for n in registry.names() if VLLM_NAMES.get(n, n) in theirs_names]
    assert len(shared) >= 30, shared
    only = os.environ.get("CONSTRAINED_VLLM_DIALECTS")  # a comma-separated subset, while working on one
    if only:
        shared = [n for n in shared if n in only.split(",")]
    cases, meta = [], {}
    for name in shared:
        model, tok = demo_models(name)
        d = registry.get(name)
        corpus = tools_for(name)
        rng = random.Random(f"vllm-{name}")
        rows = [Row(rng.sample(corpus, 4), mode) for mode in ["required", "auto"] for _ in range(PER_MODE)]
        vocab = list(dict.fromkeys([*d.special_tokens, *EXTRA_VOCAB.get(name, [])]))
        for k, (row, (text, done)) in enumerate(zip(rows, sample_rows(model, tok, name, rows, seed=7))):
            if not done:
                continue
            case_id = f"{name}/{k}"
            meta[case_id] = {"dialect": name, "text": text, "tools": row.tools, "ours": _calls(parse(text, d, row.tools))}
            cases.append({"id": case_id, "parser": VLLM_NAMES.get(name, name), "vocab": vocab, "tools": row.tools, "text": text})
    verdicts = run_judge(python, {"cases": cases})
    agree, known, unexplained = Counter(), Counter(), []
    for verdict in verdicts:
        case = {**meta[verdict["id"]], "theirs": verdict["calls"], "error": verdict["error"]}
        name = case["dialect"]
        if case["theirs"] == case["ours"] and not verdict["error"]:
            agree[name] += 1
        elif (reason := explain(name, case)) is not None:
            known[(name, reason)] += 1
        else:
            unexplained.append(case)
    report = {name: {"agree": agree[name], "known": {r: k for (n, r), k in known.items() if n == name},
                     "unexplained": sum(c["dialect"] == name for c in unexplained)} for name in shared}
    print("\nvLLM agreement per dialect:\n" + "\n".join(
        f"  {n:16} {r['agree']:3} agree, {sum(r['known'].values()):3} known divergences, {r['unexplained']} unexplained" for n, r in report.items()))
    for (name, reason), count in sorted(known.items()):
        print(f"  known divergence x{count} {name}: {reason}")
    if os.environ.get("CONSTRAINED_VLLM_REPORT"):
        Path(os.environ["CONSTRAINED_VLLM_REPORT"]).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    assert not unexplained, "\n".join(
        f"{c['dialect']}: ours {c['ours']} vLLM {c['theirs']} ({c['error']})\n  text: {c['text']!r}" for c in unexplained[:10])
    for name, r in report.items():  # every dialect was judged on enough outputs
        assert r["agree"] + sum(r["known"].values()) >= 20, (name, r)
