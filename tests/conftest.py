import functools
import os

import pytest
from hypothesis import settings

from constrained import demo

# Property tests draw the same examples on every run (CI is deterministic); HYPOTHESIS_PROFILE=explore
# draws new ones each run, to look for cases the fixed draw does not reach.
settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


@pytest.fixture(scope="session")
def demo_models():
    """(model, tokenizer) of a dialect's random demo model; the last few kept (each holds a 128K
    vocabulary's embeddings and a tokenizer with its grammar cache: the suite walks ~45 dialects)."""
    return functools.lru_cache(maxsize=4)(demo.load_random)


def pytest_configure(config):
    # One thread: the demo model's matmuls are tiny, and two threads spinning on a shared 2-core
    # machine made each step ~5x slower. Also keeps runs deterministic.
    import torch

    torch.set_num_threads(1)


_exit_status = 0


def pytest_sessionfinish(session, exitstatus):
    global _exit_status
    _exit_status = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """A thread the interpreter joins at exit (a non-daemon thread; any ThreadPoolExecutor worker,
    daemon or not: those made from a daemon thread, as a server's event loop is, are daemons that
    `concurrent.futures` still joins) that is stuck would hold the exit for ever, and CI with it.
    Idle pool workers are told to stop, as at exit; the others get 10 s. Then any still running are
    named with their stacks and the process exits with the tests' own status."""
    import sys
    import threading
    import time
    import traceback
    from concurrent.futures import thread as pool_threads

    queues = dict(getattr(pool_threads, "_threads_queues", {}))  # what concurrent.futures joins at exit
    for q in queues.values():
        q.put(None)  # wakes an idle worker; it exits once its pool is shut down (every server's is, on close)
    deadline = time.time() + 10
    left = [t for t in threading.enumerate() if t is not threading.main_thread() and (not t.daemon or t in queues)]
    for t in left:
        t.join(max(0.0, deadline - time.time()))
    left = [t for t in left if t.is_alive()]
    if not left:
        return
    frames = sys._current_frames()
    print(f"\nconftest: {len(left)} thread(s) the exit would wait for are still running; exiting without them:", file=sys.stderr)
    for t in left:
        print(f"--- {t.name}", file=sys.stderr)
        traceback.print_stack(frames.get(t.ident), file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status)
