"""Batch scoring's row counts: one accumulator keyed by partition, so a task run twice is counted once."""

from __future__ import annotations

import pytest

from mlpilot.spark._score import _PartitionCounts

pytestmark = [pytest.mark.spark]


def test_a_partitions_counts_replace_an_earlier_attempts_instead_of_adding() -> None:
    rule = _PartitionCounts()
    total = rule.zero({})
    total = rule.addInPlace(total, {0: (10, 1)})
    total = rule.addInPlace(total, {1: (7, 0)})
    total = rule.addInPlace(total, {0: (10, 1)})  # partition 0 retried (or scored again for its rejects)
    assert total == {0: (10, 1), 1: (7, 0)}
    assert sum(good for good, _ in total.values()) == 17 and sum(bad for _, bad in total.values()) == 1
