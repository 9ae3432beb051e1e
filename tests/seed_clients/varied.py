# Runs one seed client loop (a file of this folder, the seed's own code) once per user request in
# CONSTRAINED_REQUESTS (a JSON list): the seed's request text is replaced by each, nothing else.
# Prints one JSON line per request: what the loop ended with (read from the loop's own variables).
#   python varied.py SEED_FILE
import contextlib
import io
import json
import os
import signal
import sys

SEED_REQUESTS = ("What's the weather like in Beijing today? Let's check using the tool.",
                 "What's the weather like in San Francisco? use celsius.")
PER_REQUEST_S = int(os.environ.get("CONSTRAINED_REQUEST_TIMEOUT", "90"))


def _role(m):
    return m.get("role") if isinstance(m, dict) else getattr(m, "role", None)


def _timeout(*_):
    raise TimeoutError(f"the loop ran past {PER_REQUEST_S} s")


def main() -> None:
    path = sys.argv[1]
    source = open(path, encoding="utf-8").read()
    seed_request = next(r for r in SEED_REQUESTS if r in source)
    signal.signal(signal.SIGALRM, _timeout)
    for request in json.loads(os.environ["CONSTRAINED_REQUESTS"]):
        code = source.replace(seed_request, json.dumps(request)[1:-1])  # inside the seed's double-quoted literal
        ns = {"__name__": "__main__", "__file__": path}
        out = io.StringIO()
        error = None
        signal.alarm(PER_REQUEST_S)
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(code, path, "exec"), ns)
        except BaseException as err:  # noqa: BLE001 - reported, the next request runs
            error = f"{type(err).__name__}: {err}"
        finally:
            signal.alarm(0)
        raw = ns.get("raw_out") or {}
        choice = ns.get("choice")
        text = ns.get("msg") if ns.get("msg") is not None else getattr(getattr(choice, "message", None), "content", None)
        print(json.dumps({
            "request": request,
            "error": error,
            # chat loops keep finish_reason; the manual loop's last /completions answer is raw_out
            "finish_reason": ns.get("finish_reason") or (raw.get("choices") or [{}])[0].get("finish_reason"),
            "tool_results": sum(_role(m) == "tool" for m in ns.get("messages", [])),
            "final_text": text,
            "stdout": out.getvalue()[-2000:],
        }), flush=True)


if __name__ == "__main__":
    main()
