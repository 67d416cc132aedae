"""The skip rule of a count that remembers the source offsets it covers."""

from __future__ import annotations

from streamer.worker.tally import add, count_of


def test_events_above_the_stored_offset_are_counted_and_the_highest_kept() -> None:
    value, counted, skipped = add(0, [(0, 5), (0, 6), (1, 2)])
    assert (counted, skipped) == (3, 0)
    assert value == {"count": 3, "through": {"0": 6, "1": 2}}


def test_events_at_or_below_the_stored_offset_are_skipped() -> None:
    stored = {"count": 3, "through": {"0": 6, "1": 2}}
    value, counted, skipped = add(stored, [(0, 6), (0, 4), (1, 2), (1, 3), (0, 7)])
    assert (counted, skipped) == (2, 3)
    assert value == {"count": 5, "through": {"0": 7, "1": 3}}
    assert stored == {"count": 3, "through": {"0": 6, "1": 2}}  # not changed in place


def test_a_copy_later_in_the_same_batch_is_skipped() -> None:
    value, counted, skipped = add(0, [(0, 1), (0, 2), (0, 1)])
    assert (count_of(value), counted, skipped) == (2, 2, 1)


def test_nothing_new_gives_back_the_same_value() -> None:
    stored = {"count": 3, "through": {"0": 6}}
    value, counted, skipped = add(stored, [(0, 5), (0, 6)])
    assert value is stored and (counted, skipped) == (0, 2)


def test_a_plain_int_is_a_count_without_offsets() -> None:
    value, counted, _ = add(40, [(2, 0)])
    assert value == {"count": 41, "through": {"2": 0}} and counted == 1
    assert count_of(40) == 40 and count_of(value) == 41


def test_events_without_a_source_are_always_counted() -> None:
    value, counted, skipped = add({"count": 1, "through": {"0": 9}}, [None, None])
    assert (count_of(value), counted, skipped) == (3, 2, 0)
