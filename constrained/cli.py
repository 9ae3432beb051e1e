"""`constrained` command line: generate, serve, bench, coverage, check-tools.

Each subcommand is registered by the module that owns it; imports are deferred so that
`constrained --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from . import dialect as registry
from .errors import CommandError, ToolSpecError, UnsupportedSchemaError, describe
from .schema import ADDITIONAL_PROPERTIES


def read_json_file(path: str, what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as err:
        raise CommandError(f"cannot read the {what}: {err.strerror}: {path!r}") from None
    except ValueError as err:
        raise CommandError(f"the {what} {path!r} is not JSON: {err}") from None


def _load_tools(path: str) -> tuple:
    from .types import as_tools

    data = read_json_file(path, "tools file")
    return as_tools(data.get("tools", data) if isinstance(data, dict) else data)


def _generate(args: argparse.Namespace) -> int:
    if args.max_tokens < 1:
        args.parser.error("--max-tokens must be at least 1")
    try:
        dialect = registry.get(args.dialect)
    except ValueError as err:
        raise CommandError(str(err)) from None
    tools = _load_tools(args.tools)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from . import demo, parse
    from .chat import prepare_history, render_prompt
    from .compiler import eos_token_ids
    from .processor import ToolCallLogitsProcessor
    from .types import ToolChoice

    # everything a request can get wrong is checked before the model loads
    tok = AutoTokenizer.from_pretrained(args.model) if args.model else demo.trained_tokenizer(dialect)
    history = prepare_history([{"role": "user", "content": args.prompt}], dialect)
    choice = args.tool_choice if args.tool_choice in ("auto", "none", "required") else ToolChoice("named", args.tool_choice)
    model = AutoModelForCausalLM.from_pretrained(args.model).eval() if args.model else None
    vocab_size = model.config.vocab_size if model is not None else len(tok)  # the demo model: one row per token
    stops = eos_token_ids(tok, model)
    proc = ToolCallLogitsProcessor(tok, dialect, tools, choice, not args.no_parallel, first_index=history.calls_so_far,
                                   additional_properties=args.additional_properties, vocab_size=vocab_size, eos_token_id=stops)
    minimum = proc.minimum_tokens()
    if args.max_tokens < minimum:
        raise CommandError(f"--max-tokens is {args.max_tokens}, but the shortest complete answer for this tool choice takes {minimum} tokens")
    if model is None:
        model = demo.load(dialect)[0]
    if args.model and getattr(tok, "chat_template", None):
        prompt = tok.apply_chat_template(history.messages, tools=[t.to_openai() for t in tools], tokenize=False, add_generation_prompt=True)
    else:
        prompt = render_prompt(dialect, history, tools)
    enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
    torch.manual_seed(args.seed)
    out = model.generate(**enc, logits_processor=[proc], do_sample=args.temperature > 0, temperature=args.temperature or None,
                         max_new_tokens=args.max_tokens, pad_token_id=tok.pad_token_id)
    ids = [t for t in out[0, enc["input_ids"].shape[1]:].tolist() if t not in (*stops, tok.pad_token_id)]
    text = str(tok.decode(ids))
    result = parse(text, dialect, tools=tools, first_index=history.calls_so_far, additional_properties=args.additional_properties)
    print("--- raw output ---")
    print(text)
    print("--- parsed (OpenAI) ---")
    finish = "tool_calls" if result.tool_calls and proc.is_done() else ("length" if not proc.is_done() else "stop")
    print(json.dumps({"finish_reason": finish, "message": result.message(), "violations": result.violations}, indent=2, ensure_ascii=False))
    return 0


def _dialects(args: argparse.Namespace) -> int:
    if args.markdown or args.readme:
        from .tools.dialect_table import markdown_table, update_readme

        if args.readme:
            print(f"{args.readme}: {'updated' if update_readme(args.readme) else 'already up to date'}")
        else:
            print(markdown_table(), end="")
        return 0
    for d in registry.all_dialects():
        print(f"{d.name:16} {d.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="constrained", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="generate one constrained reply and print raw text and parsed calls")
    gen.add_argument("--dialect", required=True, help="a dialect name (`constrained dialects` lists them)")
    gen.add_argument("--tools", required=True, help="a JSON file with an OpenAI tools list")
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--tool-choice", default="auto", help="auto, none, required, or a tool name")
    gen.add_argument("--no-parallel", action="store_true", help="parallel_tool_calls=false")
    gen.add_argument("--additional-properties", choices=ADDITIONAL_PROPERTIES, default="forbid",
                     help="arguments: forbid properties the schema does not declare (default), or allow them where JSON Schema does")
    gen.add_argument("--model", help="a local Hugging Face checkpoint (default: the built-in demo model)")
    gen.add_argument("--max-tokens", type=int, default=256)
    gen.add_argument("--temperature", type=float, default=1.0)
    gen.add_argument("--seed", type=int, default=0)
    gen.set_defaults(func=_generate, parser=gen)

    dialects = sub.add_parser("dialects", help="list the registered dialects")
    dialects.add_argument("--markdown", action="store_true", help="print the README's dialect table (from the declarations)")
    dialects.add_argument("--readme", metavar="PATH", help="rewrite the dialect table of this README in place")
    dialects.set_defaults(func=_dialects)

    for module, hook in (
        ("constrained.server.cli", "add_serve_command"),
        ("constrained.benchmarks.cli", "add_bench_command"),
        ("constrained.tools.cli", "add_coverage_command"),
        ("constrained.tools.cli", "add_check_tools_command"),
    ):
        try:
            mod = __import__(module, fromlist=[hook])
        except ModuleNotFoundError as err:
            if not (err.name and module.startswith(err.name)):
                raise  # a missing dependency inside the module is a real error
            continue
        getattr(mod, hook)(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Usage errors exit 2 with the subcommand's usage (argparse); a problem with the request (a
    schema, a tool, a dialect, a file) prints one line naming it, the text the server would send,
    and exits 1."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CommandError, ToolSpecError, UnsupportedSchemaError) as err:
        text = str(err) if isinstance(err, CommandError) else describe(err)
        print(f"constrained {args.command}: error: {' '.join(text.split())}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
