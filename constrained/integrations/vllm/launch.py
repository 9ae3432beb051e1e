"""Running vLLM with the plug-in: which interpreter, the `vllm serve` command, a demo checkpoint,
and a server process that is started, awaited and stopped (for `constrained serve --engine vllm`,
the tests and the benchmark). Imports nothing from vLLM: vLLM may live in another environment.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from constrained import dialect as registry
from constrained.dialect import Dialect

from . import parser_name

VLLM_PYTHON_ENV = "CONSTRAINED_VLLM_PYTHON"  # the interpreter of an environment with vLLM and this project
VENV_NAME = ".venv-vllm"  # what scripts/install-vllm.sh makes
DEMO_HIDDEN_SIZE = 128  # 4 heads of 32: vLLM's CPU attention needs a head size of at least 32
# On CPU: KV cache GiB (vLLM's default is sized for real models), a context the demo needs, no
# torch.compile warm-up (55 s of a 2-core machine's start-up, for a model this small), and no
# chunked prefill: vLLM 0.32's CPU worker crashes ("CPU Generator does not use offset",
# gpu_model_runner._bookkeeping_sync) when a request with a `seed` is cut by a chunked prefill.
DEMO_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1"}
DEMO_ARGS = ("--dtype", "float32", "--max-model-len", "4096", "--enforce-eager", "--no-enable-chunked-prefill", "--max-num-batched-tokens", "8192")
# The demo model's nudge inside vLLM (nudge.py): a logits processor, and the dialect it nudges for.
NUDGE_PROCESSOR = "constrained.integrations.vllm.nudge:DemoNudge"
# Every output of our grammar completes within its max_tokens (budget.py; not importable without vLLM).
BUDGET_PROCESSOR = "constrained.integrations.vllm.budget:ToolCallBudget"
NUDGE_ENV = "CONSTRAINED_DEMO_NUDGE"


def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def vllm_python(explicit: str | None = None) -> str | None:
    """An interpreter that can run vLLM with this project: `explicit`, $CONSTRAINED_VLLM_PYTHON,
    this one when it imports vllm, else `.venv-vllm` in the working directory or this checkout."""
    if explicit:
        return explicit
    if os.environ.get(VLLM_PYTHON_ENV):
        return os.environ[VLLM_PYTHON_ENV]
    if importlib.util.find_spec("vllm") is not None:
        return sys.executable
    for base in (Path.cwd(), repo_root()):
        candidate = base / VENV_NAME / "bin" / "python"
        if candidate.exists():
            return str(candidate)
    return None


def demo_checkpoint(dialect: str | Dialect, path: str | Path | None = None, *, extra_dialects: Sequence[str] = (), seed: int = 0) -> Path:
    """Save the demo model (random weights, hidden 128, 2 layers) with the demo tokenizer and
    `constrained.chat.jinja_chat_template` as a Hugging Face checkpoint vLLM can load; the
    tokenizer also has `extra_dialects`' markers as special tokens (for the parser `constrained`,
    which serves several dialects). Without `path`, under ~/.cache/constrained, made once."""
    from constrained import demo
    from constrained.chat import jinja_chat_template

    d = registry.get(dialect)
    extra = tuple(m for name in extra_dialects for m in registry.get(name).vocab_markers)
    template = jinja_chat_template(d)
    if path is None:
        key = hashlib.blake2b(repr((d.name, extra, template, seed, DEMO_HIDDEN_SIZE)).encode(), digest_size=8).hexdigest()
        path = demo.cache_dir() / f"vllm-demo-{d.name}-{key}"
    return demo.save_checkpoint(lambda: demo.load_random(d, seed=seed, hidden_size=DEMO_HIDDEN_SIZE, layers=2, extra_markers=extra),
                                template, Path(path))


def serve_args(
    model: str | Path, dialect: str | Dialect, *, host: str = "127.0.0.1", port: int = 8000, served_model_name: str | None = None,
    api_key: str | None = None, max_num_seqs: int | None = None, seed: int | None = None, default_max_tokens: int | None = None,
    reasoning: bool = True, demo: bool = False, nudge: bool = False, budget: bool = True, extra: Sequence[str] = (),
) -> list[str]:
    """`vllm serve` arguments (after the interpreter) with the plug-in's parsers for `dialect`
    (`constrained`: the dialect per request). `demo`: the demo checkpoint's settings; `nudge`: the
    demo model's nudge (set NUDGE_ENV to the dialect in the server's environment); `budget`: every
    output of our grammar completes within its `max_tokens` (budget.py)."""
    if isinstance(dialect, Dialect) or dialect != "constrained":
        d: Dialect | None = registry.get(dialect)
        name = parser_name(d.name)  # type: ignore[union-attr]
    else:
        d, name = None, "constrained"
    args = ["-m", "vllm.entrypoints.cli.main", "serve", str(model), "--host", host, "--port", str(port),
            "--enable-auto-tool-choice", "--tool-call-parser", name]
    if reasoning and (d is None or d.reasoning):
        args += ["--reasoning-parser", name]
    if served_model_name:
        args += ["--served-model-name", served_model_name]
    if api_key:
        args += ["--api-key", api_key]
    if max_num_seqs:
        args += ["--max-num-seqs", str(max_num_seqs)]
    if seed is not None:
        args += ["--seed", str(seed)]
    if default_max_tokens:
        args += ["--override-generation-config", f'{{"max_new_tokens": {int(default_max_tokens)}}}']
    if demo:
        args += list(DEMO_ARGS)
    processors = [NUDGE_PROCESSOR] * nudge + [BUDGET_PROCESSOR] * budget  # the budget restricts the final scores
    if processors:
        args += ["--logits-processors", *processors]
    return args + list(extra)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class VLLMServer:
    """A `vllm serve` process in its own process group: `start()` waits for /health, `stop()` ends
    the group (API servers, engine core and workers together). Output goes to `log`."""

    def __init__(self, python: str, args: Sequence[str], *, env: Mapping[str, str] | None = None, log: str | Path | None = None,
                 host: str = "127.0.0.1", port: int | None = None):
        self.python = python
        self.args = list(args)
        self.host = host
        if port is None:
            port = int(self.args[self.args.index("--port") + 1]) if "--port" in self.args else 8000
        self.port = port
        self.url = f"http://{host}:{port}"
        self.env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", **(env or {})}
        self.log_path = Path(log) if log else None
        self.proc: subprocess.Popen | None = None
        self.startup_seconds: float | None = None
        self._log: IO[Any] | None = None

    def start(self, timeout: float = 600) -> VLLMServer:
        import httpx

        out: Any = subprocess.DEVNULL
        if self.log_path:
            self._log = out = open(self.log_path, "w")  # noqa: SIM115  closed in stop()
            out.write(f"$ {self.python} {' '.join(self.args)}\n")
            out.flush()
        t0 = time.perf_counter()
        self.proc = subprocess.Popen([self.python, *self.args], stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        deadline = t0 + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vLLM exited with {self.proc.returncode} while starting{self._log_tail()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() > deadline:
                self.stop()
                raise TimeoutError(f"vLLM was not ready after {timeout:.0f} s{self._log_tail()}")
            time.sleep(1)
        self.startup_seconds = time.perf_counter() - t0
        return self

    def _log_tail(self, chars: int = 4000) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        return f"; the end of {self.log_path}:\n" + self.log_path.read_text(errors="replace")[-chars:]

    def stop(self, timeout: float = 30) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# -- `constrained serve --engine vllm` ------------------------------------------------------------------
# Options of our server that vLLM has no counterpart for (their defaults are fine, others are refused).
BUILTIN_ONLY = {"max_queue": "--max-queue", "max_body_mb": "--max-body-mb", "no_continuous": "--no-continuous", "jump_forward": "--no-jump-forward",
                "grammar_cache_mb": "--grammar-cache-mb", "threads": "--threads", "device": "--device"}


class ServeError(ValueError):
    pass


def vllm_serve_command(args: Any, defaults: Mapping[str, Any]) -> tuple[str, list[str], dict[str, str]]:
    """`constrained serve` options -> (interpreter, `vllm serve` arguments, environment). Raises
    ServeError for what vLLM cannot do or when no vLLM environment is found."""
    from constrained.server.loader import LoadError, resolve_dialect

    refused = [flag for key, flag in BUILTIN_ONLY.items() if getattr(args, key) != defaults.get(key)]
    if refused:
        raise ServeError(f"{', '.join(refused)}: not available with --engine vllm (pass vLLM's own options after --)")
    extra = list(args.vllm_args or [])
    if extra and extra[0] == "--":
        extra = extra[1:]
    python = vllm_python(args.vllm_python)
    if python is None:
        raise ServeError(f"no vLLM environment: install vllm (pip install 'constrained[vllm]', or bash scripts/install-vllm.sh for {VENV_NAME}), "
                         f"or name its interpreter with --vllm-python / {VLLM_PYTHON_ENV}")
    env: dict[str, str] = {}
    demo = not args.model
    try:
        if demo:
            from constrained.demo import trained_checkpoint

            dialect = resolve_dialect(args.dialect)
            random_model = getattr(args, "demo_model", "trained") == "random" or args.demo_nudge
            model = str(demo_checkpoint(dialect) if random_model else trained_checkpoint(dialect))
            served = args.served_model_name or f"constrained-demo-{dialect.name}"
            env.update({k: os.environ.get(k, v) for k, v in DEMO_ENV.items()})
        else:
            from transformers import AutoTokenizer

            dialect = resolve_dialect(args.dialect, AutoTokenizer.from_pretrained(args.model) if args.dialect in (None, "", "auto") else None)
            model, served = args.model, args.served_model_name
    except LoadError as err:
        raise ServeError(str(err)) from None
    if args.demo_nudge:
        if not demo:
            raise ServeError("--demo-nudge is for the built-in demo model only")
        env[NUDGE_ENV] = dialect.name
    if args.lazy_from is not None:  # the engine's and the budget processor's route of large grammars
        from . import LAZY_FROM_ENV

        env[LAZY_FROM_ENV] = str(args.lazy_from)
    if args.additional_properties != "forbid":
        from .request import ADDITIONAL_PROPERTIES_ENV

        env[ADDITIONAL_PROPERTIES_ENV] = args.additional_properties
    vargs = serve_args(model, dialect, host=args.host, port=args.port, served_model_name=served, api_key=args.api_key or os.environ.get("CONSTRAINED_API_KEY"),
                       max_num_seqs=args.max_batch, seed=args.seed, default_max_tokens=args.default_max_tokens, demo=demo, nudge=args.demo_nudge,
                       extra=["--uvicorn-log-level", args.log_level, *extra])
    return python, vargs, env


def serve_vllm(args: Any, defaults: Mapping[str, Any]) -> int:
    """Replace this process with `vllm serve` (signals then reach vLLM itself)."""
    try:
        python, vargs, env = vllm_serve_command(args, defaults)
    except ServeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    command = shlex.join([python, *vargs])
    if args.print_command:
        print(" ".join([*(f"{k}={shlex.quote(v)}" for k, v in env.items()), command]))
        return 0
    print(f"constrained: {command}", file=sys.stderr, flush=True)
    os.execve(python, [python, *vargs], {**os.environ, **env})
    return 0  # not reached
