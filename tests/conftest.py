import pytest

from constrained import demo

DIALECT_NAMES = ["kimi_k2", "minimax_m1", "pythonic", "hermes"]


@pytest.fixture(scope="session")
def demo_models():
    cache = {}

    def get(dialect):
        if dialect not in cache:
            cache[dialect] = demo.load(dialect)
        return cache[dialect]

    return get
