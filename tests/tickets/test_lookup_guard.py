"""Failed look-ups are limited per address and per number over a sliding window (real Redis)."""

from __future__ import annotations

import redis

from tickets import lookup_guard


def test_failures_count_over_a_sliding_window_per_address_and_per_number(redis_client: redis.Redis) -> None:
    start = 1_800_000_000.0 - 1_800_000_000.0 % 3600  # the start of an hour: every window starts here
    for i in range(10):
        assert lookup_guard.allowed(redis_client, "10.0.0.1", f"20261127-{i:04d}", start + i)
        lookup_guard.failed(redis_client, "10.0.0.1", f"20261127-{i:04d}", start + i)
    assert not lookup_guard.allowed(redis_client, "10.0.0.1", "20261127-0100", start + 60)
    assert lookup_guard.allowed(redis_client, "10.0.0.2", "20261127-0100", start + 60)  # another address
    # Half of the next 10-minute window later, half of the earlier failures still count: 5 < 10.
    assert lookup_guard.allowed(redis_client, "10.0.0.1", "20261127-0100", start + 900)
    for i in range(10):
        lookup_guard.failed(redis_client, f"10.1.0.{i}", "20261127-0200", start + 900)
    assert not lookup_guard.allowed(redis_client, "10.9.9.9", "20261127-0200", start + 901)  # one number
