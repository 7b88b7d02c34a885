"""Fixtures of the fault suite: a seed that reproduces a run, the figures it prints, and
private servers that may be stopped and started."""

from __future__ import annotations

import os
import random
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.services.rabbitmq import script as rabbitmq_script
from tests.conftest import ARTIFACTS
from tests.faults.figures import Figures
from tests.faults.services import PrivateRabbit, PrivateRedis

_FIGURES = Figures(seed=int(os.environ.get("FAULT_SEED") or secrets.randbelow(10**6)))


@pytest.fixture(scope="session")
def figures() -> Figures:
    return _FIGURES


@pytest.fixture
def rng(request: pytest.FixtureRequest, figures: Figures) -> random.Random:
    """Random choices of one test, reproducible from the run's seed alone."""
    return random.Random(f"{figures.seed}:{request.node.name}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _FIGURES.imports and not _FIGURES.survived:
        return
    terminalreporter.section("fault suite")
    for line in _FIGURES.lines():
        terminalreporter.write_line(line)


@pytest.fixture
def private_rabbit(log_dir: Path) -> Iterator[PrivateRabbit]:
    if rabbitmq_script("rabbitmq-server") is None:
        pytest.skip(
            "rabbitmq-server is not installed: the broker restart test needs a private node"
        )
    node = PrivateRabbit(ARTIFACTS / "rabbitmq", log_dir / f"rabbitmq-{os.getpid()}.log")
    yield node
    node.shutdown()


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    yield server
    server.stop()
