import pytest

from constrained import demo


@pytest.fixture(scope="session")
def demo_models():
    cache = {}

    def get(dialect):
        if dialect not in cache:
            cache[dialect] = demo.load(dialect)
        return cache[dialect]

    return get


def pytest_configure(config):
    # One thread: the demo model's matmuls are tiny, and two threads spinning on a shared 2-core
    # machine made each step ~5x slower. Also keeps runs deterministic.
    import torch

    torch.set_num_threads(1)
