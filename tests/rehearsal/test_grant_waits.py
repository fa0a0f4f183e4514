"""The rehearsal's waits for sign-in changes (rehearsal/harness.py): the cache times are launch.py's
own, and the wait for a revocation is bounded and tells a stale worker from a refusing one."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import pytest

from rehearsal import harness
from tests.conftest import ROOT


def test_the_cache_times_are_the_ones_launch_py_sets() -> None:
    launch = (ROOT / "constructs_lib" / "instance" / "launch.py").read_text()
    for name in ("AUTH_CACHE_SECONDS", "GRANT_CACHE_SECONDS"):
        match = re.search(rf"(?m)^{name} = (\d+)$", launch)
        assert match is not None, name
        assert getattr(harness, name) == int(match.group(1)) > 0
    with pytest.raises(LookupError, match="sets no number NOT_SET"):
        harness._launch_setting("NOT_SET")


class Clock:
    """time.monotonic and time.sleep of the harness: sleeping moves the clock, probes take 0.05 s."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(time, "monotonic", clock.monotonic)  # the module harness uses
    monkeypatch.setattr(time, "sleep", clock.sleep)
    return clock


def probe_of(clock: Clock, statuses: Iterator[int]) -> Callable[[], int]:
    def probe() -> int:
        clock.now += 0.05
        return next(statuses)

    return probe


def test_a_revocation_is_timed_from_the_refusals_that_stay(clock: Clock) -> None:
    # A stale worker allows, one refuses, another stale one allows: then every worker refuses.
    seen = [200, 200, 403, 200, *[403] * harness.REFUSED_IN_ROW, 200]
    waited, statuses = harness.until_refused(probe_of(clock, iter(seen)))
    assert statuses == seen[:-1]
    # Three allowed probes (0.5 s apart), one refused (0.1 s): the refusals that stay began then.
    assert waited == pytest.approx(4 * 0.05 + 3 * 0.5 + 0.1 + 0.05)


def test_a_worker_that_never_refuses_ends_the_wait_at_its_bound(clock: Clock) -> None:
    waited, statuses = harness.until_refused(probe_of(clock, iter([200] * 10_000)))
    assert 403 not in statuses and waited == 0.0
    assert harness.STALE_GRANT_WAIT <= clock.now < harness.STALE_GRANT_WAIT + 1
