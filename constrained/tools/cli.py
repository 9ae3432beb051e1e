"""The `coverage` and `check-tools` subcommands (argument parsing only: the work is imported when
a command runs, so that `constrained --help` stays fast)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..schema import ADDITIONAL_PROPERTIES


def add_coverage_command(subparsers: argparse._SubParsersAction) -> None:
    """Register ``coverage`` on the main CLI's subparsers."""
    cov = subparsers.add_parser("coverage", help="grammar faithfulness on a MaskBench-style corpus")
    cov.add_argument("dir", help="folder of MaskBench JSON files")
    cov.add_argument("--json", action="store_true", help="print one JSON object")
    cov.add_argument("--sample", type=int, default=None, metavar="N", help="every N-th file only")
    cov.add_argument("--limit", type=int, default=None, metavar="N", help="at most N files")
    cov.add_argument("--out", default=None, metavar="DIR", help="write coverage.json and coverage.md there")
    cov.add_argument("--no-baseline", action="store_true", help="skip the raw-xgrammar baseline")
    cov.add_argument("--compare", nargs="+", default=[], metavar="JSON",
                     help="coverage.json files of other runs (e.g. another xgrammar version) to put beside this one")
    cov.add_argument("--no-schema-policy", action="store_true",
                     help="measure the tool default (additional_properties=forbid) only, not also =schema")
    cov.add_argument("--timeout", type=float, default=None, metavar="S",
                     help="seconds one schema may take before it is stopped and counted as a timeout "
                          "(default 60; 0: no limit, in this process)")
    cov.add_argument("--no-length-costs", action="store_true", help="skip measuring what string length bounds cost")
    cov.set_defaults(func=_coverage_command)


def _coverage_command(args: argparse.Namespace) -> int:
    from .coverage import DEFAULT_TIMEOUT_S, format_coverage_table, format_version_comparison, run_coverage

    timeout = DEFAULT_TIMEOUT_S if args.timeout is None else (args.timeout or None)
    result = run_coverage(args.dir, sample=args.sample, limit=args.limit,
                          strict_xgrammar_baseline=not args.no_baseline, schema_policy=not args.no_schema_policy,
                          progress=not args.json, timeout_s=timeout, length_costs=not args.no_length_costs)
    table = format_coverage_table(result)
    if args.compare:
        others = [json.loads(Path(f).read_text(encoding="utf-8")) for f in args.compare]
        table += "\n## By xgrammar version (same corpus, policy `forbid`)\n\n" + format_version_comparison([result, *others])
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "coverage.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        (out / "coverage.md").write_text("# Schema coverage\n\n" + table, encoding="utf-8")
    print(json.dumps(result, ensure_ascii=False) if args.json else table)
    return 0


def add_check_tools_command(subparsers: argparse._SubParsersAction) -> None:
    tools = subparsers.add_parser("check-tools", help="lint OpenAI tool definitions")
    tools.add_argument("tools", help="JSON file: a list of tools or {\"tools\": [...]}")
    tools.add_argument("--json", action="store_true", help="print one JSON object")
    tools.add_argument("--dialect", action="append", metavar="NAME", help="only these dialects (default: every registered one; `constrained dialects` lists them)")
    tools.add_argument("--additional-properties", choices=ADDITIONAL_PROPERTIES, default="forbid",
                       help="the policy the tools will be served with (default forbid, as `constrained serve`)")
    tools.set_defaults(func=_check_tools_command)



def _check_tools_command(args: argparse.Namespace) -> int:
    from ..cli import read_json_file

    data = read_json_file(args.tools, "tools file")
    tools = data.get("tools", []) if isinstance(data, dict) else data
    from .check_tools import check_tools

    reports = check_tools(tools, dialects=args.dialect, additional_properties=args.additional_properties)
    if args.json:
        print(json.dumps({"tools": reports, "ok": all(r["ok"] for r in reports)}, ensure_ascii=False))
    else:
        for r in reports:
            status = "ok" if r["ok"] else "FAIL"
            ms = f"{r['compile_ms']:.1f} ms" if r["compile_ms"] is not None else "-"
            print(f"{status:4} {r['name']} ({ms})")
            for line in ([r["error"]] if r["error"] else []) + [f"unenforced: {u}" for u in r["unenforced"]] + [
                f"{d}: {p}" for d, ps in r["problems"].items() for p in ps
            ]:
                print(f"     {line}")
    return 0 if all(r["ok"] for r in reports) else 1
