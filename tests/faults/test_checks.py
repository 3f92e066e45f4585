"""The fault runs' own judge: which repeats a kill or a cut explains."""

from __future__ import annotations

from tests.faults.checks import Deliveries, repeats_without_a_kill


def _deliveries(*arrivals: tuple[str, float, str]) -> Deliveries:
    ids, times, peers = zip(*arrivals, strict=True)
    return Deliveries(list(ids), {i: {"x"} for i in ids}, list(times), list(peers))


def test_a_repeat_across_a_kill_is_explained_once():
    mail = _deliveries(("a", 10.0, "h1"), ("a", 12.0, "h2"), ("b", 10.5, "h1"), ("b", 12.5, "h2"))
    assert [r[0] for r in repeats_without_a_kill([11.0], mail)] == ["b"]
    assert repeats_without_a_kill([11.0, 11.5], mail) == []


def test_a_repeat_far_from_any_fault_is_not_explained():
    mail = _deliveries(("a", 50.0, "h2"), ("a", 50.09, "h3"))
    assert repeats_without_a_kill([10.0, (20.0, 30.0)], mail) == [("a", 0.09, [])]


def test_a_cut_hosts_late_copy_is_explained_by_its_cut():
    # Cut from 20 to 30 s; another host resends at 45 s and the cut host's
    # held hand-over gets through at 45.09 s (TCP's retransmission backoff).
    late = _deliveries(("a", 45.0, "h3"), ("a", 45.09, "h2"))
    assert repeats_without_a_kill([(20.0, 30.0, "h2")], late) == []
    # ... but only a copy from the cut host, and only one repeat per cut.
    other = _deliveries(("a", 45.0, "h3"), ("a", 45.09, "h4"))
    assert len(repeats_without_a_kill([(20.0, 30.0, "h2")], other)) == 1
    two = _deliveries(("a", 45.0, "h3"), ("a", 45.1, "h2"), ("b", 46.0, "h3"), ("b", 46.1, "h2"))
    assert len(repeats_without_a_kill([(20.0, 30.0, "h2")], two)) == 1
