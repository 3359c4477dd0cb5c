"""The split protocol's pure decisions (engine/split_protocol.py), as the nodes, the
control plane and the split simulation all use them."""
from __future__ import annotations

from triplica.engine.log_entries import decode_entry, encode_entry
from triplica.engine.split_protocol import (ACTION_ASK, ACTION_NONE, ACTION_SWITCH, ANSWER_APPLIED,
                                            ANSWER_NONE, ANSWER_NOT_LEADER, ANSWER_PROPOSED, ASK_DONE,
                                            ASK_IN_FLIGHT, ASK_MISMATCH, ASK_PROPOSE, MOVED, NOT_LEADER,
                                            ReplicaSplit, SplitAnswer, SplitMarker, SplitProgress,
                                            child_seed, marker_in, split_refusal, split_writes)

MARKER = SplitMarker(100, "left", "right")


def test_the_split_entry_round_trips_and_items_are_not_one() -> None:
    writes = decode_entry(encode_entry(split_writes(MARKER)))
    assert marker_in(writes, 7) == MARKER.at(7)
    assert marker_in([(b"\x00" * 8 + b"k", b"v")], 7) is None
    assert MARKER.child_of(99) == "left" and MARKER.child_of(100) == "right"


def test_a_leadership_that_proposed_the_split_refuses_writes_until_the_next_leader() -> None:
    split = ReplicaSplit()
    assert split.on_ask(MARKER) == ASK_PROPOSE and split.refusal(True, write=True) is None
    split.proposed(ballot=(3, 1))
    assert split.on_ask(MARKER) == ASK_IN_FLIGHT
    assert split.refusal(True, write=True) == MOVED and split.refusal(True, write=False) is None
    split.leadership(True, (3, 1))
    assert split.refusal(True, write=True) == MOVED
    split.leadership(True, (4, 1))  # a new ballot: the entry in flight is its to decide
    assert split.refusal(True, write=True) is None and split.refusal(False, write=True) == NOT_LEADER
    split.applied(MARKER.at(9))
    split.applied(MARKER.at(12))  # a retried proposal: the first one counts
    assert split.moved == MARKER.at(9) and split.refusal(True, write=False) == MOVED
    assert split.on_ask(MARKER) == ASK_DONE and split.on_ask(SplitMarker(50, "a", "b")) == ASK_MISMATCH


def test_a_child_is_cut_only_from_a_parent_that_applied_the_split() -> None:
    assert child_seed(None, 0, 100, [3, 1, 2]) is None
    seed = child_seed(MARKER.at(9), 0, 100, [3, 1, 2])
    assert seed is not None and (seed.index, seed.members) == (9, (1, 2, 3))
    assert child_seed(MARKER.at(9), 0, 50, [1, 2, 3]) is None  # not a child of this split


def test_the_control_plane_steps_and_whom_it_asks() -> None:
    assert split_refusal((0, 200), 100, intent_pending=False) is None
    assert split_refusal((0, 200), 100, intent_pending=True) is not None
    assert split_refusal((0, 200), 200, intent_pending=False) is not None
    progress = SplitProgress("parent", MARKER, [1, 2, 3])
    assert progress.action == ACTION_ASK and progress.target == 1
    decision = progress.after_answer(SplitAnswer(ANSWER_NOT_LEADER, hint=3))
    assert (decision.done, decision.target, decision.wait) == (False, 3, False)  # followed at once
    decision = progress.after_answer(SplitAnswer(ANSWER_PROPOSED))
    assert (decision.done, decision.target, decision.wait) == (False, 3, True)
    decision = progress.after_answer(SplitAnswer(ANSWER_NOT_LEADER, hint=3))  # itself: move on
    assert (decision.target, decision.wait) == (1, True)
    decision = progress.after_answer(SplitAnswer(ANSWER_NONE))
    assert (decision.target, decision.wait) == (2, True)
    decision = progress.after_answer(SplitAnswer(ANSWER_APPLIED, index=9))
    assert decision.done and progress.marker == MARKER.at(9) and progress.action == ACTION_SWITCH
    progress.switched()
    assert progress.action == ACTION_NONE
