"""What every step test shares: dask's synchronous scheduler (steps are tested as pure
graphs, on one thread, so a failure points at the step, not at a scheduler)."""

from __future__ import annotations

from collections.abc import Iterator

import dask
import pytest


@pytest.fixture(autouse=True, scope="module")
def _synchronous() -> Iterator[None]:
    with dask.config.set(scheduler="synchronous"):
        yield
