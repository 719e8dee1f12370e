"""A second sweep point with the same shapes reuses every compiled program.

JAX records an event for each XLA backend compilation; jax.monitoring passes it to a listener.
The tests count those events while the pipeline runs with another seed. A nonzero count means
that some function compiles again for every sweep point.
"""

from __future__ import annotations

import jax
import jax.monitoring
import pytest

from avatarjax.config import AnonymizeConfig, AvatarConfig, SegmentationConfig
from avatarjax.pipeline import anonymize_series

BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


class CompileCounter:
    """Count backend compilations while `counting` is true."""

    def __init__(self):
        self.counting = False
        self.count = 0
        jax.monitoring.register_event_duration_secs_listener(self._on_event)

    def _on_event(self, event: str, duration: float, **kwargs) -> None:
        if self.counting and event == BACKEND_COMPILE_EVENT:
            self.count += 1

    def measure(self, function, *args, **kwargs):
        self.count = 0
        self.counting = True
        try:
            function(*args, **kwargs)
        finally:
            self.counting = False
        return self.count


@pytest.fixture(scope="module")
def counter():
    return CompileCounter()


def config(seed: int, k: int = 10) -> AnonymizeConfig:
    return AnonymizeConfig(segmentation=SegmentationConfig(window="6h", stride=6),
                           avatar=AvatarConfig(k=k, seed=seed))


def test_second_seed_compiles_nothing(machine_temperature, counter):
    jax.clear_caches()  # other tests may have compiled these shapes already
    first = counter.measure(anonymize_series, machine_temperature, config(seed=0), progress=False)
    second = counter.measure(anonymize_series, machine_temperature, config(seed=1), progress=False)
    assert first > 0  # the counter records compilations at all
    assert second == 0


def test_other_k_compiles_again(machine_temperature, counter):
    # k is a static shape of the neighbour search, so a new k must compile: the counter can fail.
    counter.measure(anonymize_series, machine_temperature, config(seed=0, k=10), progress=False)
    assert counter.measure(anonymize_series, machine_temperature, config(seed=0, k=7), progress=False) > 0
