from __future__ import annotations

import pytest

from bot.ratelimit import TokenBucket


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_paces_to_the_rate():
    t = FakeTime()
    bucket = TokenBucket(rate=1, capacity=5, clock=t)
    assert [bucket.try_take() for _ in range(5)] == [0.0] * 5
    assert bucket.try_take() == pytest.approx(1.0)
    t.now = 2.0
    assert bucket.try_take() == 0.0 and bucket.try_take() == 0.0
    assert bucket.try_take() > 0


def test_a_429_blocks_the_bucket_for_retry_after():
    t = FakeTime()
    bucket = TokenBucket(rate=10, capacity=10, clock=t)
    bucket.penalize(1.5)
    assert bucket.try_take() == pytest.approx(1.5)
    t.now = 1.5
    assert bucket.try_take() == 0.0


def test_bucket_rejects_nonsense():
    with pytest.raises(ValueError):
        TokenBucket(rate=0, capacity=1)
