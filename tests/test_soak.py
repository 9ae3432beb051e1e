"""The soak run (issue 11, item 14) at a CI-sized count: `scripts/soak.py` starts the demo server
in its own process and sends 60 mixed requests from 32 clients (streams, non-streams, plain text,
clients that disconnect mid-stream or cancel, and every kind of hostile body), then checks that
each well-formed request got a complete answer with valid calls, each hostile one a 4xx, that no
row is left in the engine, that /metrics adds up, and that resident memory held (from request 30
to 60; two tool sets, so that every grammar is compiled before the baseline). The full run
(1,000 requests) is `python scripts/soak.py`; its figures are in the README."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "soak.py"


def _soak():
    spec = importlib.util.spec_from_file_location("soak", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_soak_60_requests_from_32_clients():
    soak = _soak()
    figures = soak.main(["--requests", "60", "--toolsets", "2", "--seed", "1"])
    failed = [name for name, ok in figures["checks"].items() if not ok]
    assert not failed, (failed, figures["failures"])
    # the mix did what it claims: every class of request was sent and answered as such
    assert figures["classes"]["ok"] >= 30 and figures["classes"]["hostile"] >= 10 and figures["classes"]["went_away"] >= 2
    assert len(figures["hostile_kinds"]) >= 10
    assert figures["tool_calls_received"] > 0 and figures["engine_cancelled"] >= 2
    assert figures["http_by_class"]["4xx"] == figures["classes"]["hostile"]
