"""The linearizability checker: classic histories, cas, pending ops, properties.

The property tests build histories by running operations against one atomic
register (a dict) at instants chosen inside each op's interval, so every
generated history is linearizable by construction; a read result no op ever
wrote must then be reported as a violation.
"""
from __future__ import annotations

import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triplica.sim.history import HistoryEvent
from triplica.sim.linearizability import CheckResult, check_history


def put(client, key, value, start, end, ok=True):
    return HistoryEvent(client, "put", key, value, None, start, end, ok, None)


def get(client, key, result, start, end, ok=True):
    return HistoryEvent(client, "get", key, None, None, start, end, ok, result)


def cas(client, key, expected, value, start, end, ok=True):
    return HistoryEvent(client, "cas", key, value, expected, start, end, ok, None)


def assert_ok(events, **kwargs) -> CheckResult:
    result = check_history(events, **kwargs)
    assert result.verdict == "ok", result.explanation
    assert result.ok
    return result


def assert_violation(events, key="k", **kwargs) -> CheckResult:
    result = check_history(events, **kwargs)
    assert result.verdict == "violation", result.explanation
    assert not result.ok
    assert result.key == key
    return result


# -- classic histories ----------------------------------------------------


def test_empty_history_is_ok():
    assert_ok([])


def test_sequential_history_ok():
    assert_ok([
        get(1, "k", None, 0, 1),
        put(1, "k", "a", 2, 3),
        get(2, "k", "a", 4, 5),
        put(2, "k", "b", 6, 7),
        get(1, "k", "b", 8, 9),
    ])


def test_sequential_read_of_absent_key_after_write_is_violation():
    assert_violation([put(1, "k", "a", 0, 1), get(2, "k", None, 2, 3)])


def test_concurrent_ops_ok_in_some_order():
    # The read overlaps both writes, and sees the first one: order a, read, b.
    assert_ok([
        put(1, "k", "a", 0, 10),
        put(2, "k", "b", 1, 11),
        get(3, "k", "a", 2, 12),
        get(3, "k", "b", 13, 14),
    ])


def test_concurrent_reads_disagreeing_with_each_other_need_an_order():
    # r1 sees b then a later read sees a: needs order b, a with a overlapping.
    assert_ok([
        put(1, "k", "a", 0, 10),
        put(2, "k", "b", 0, 10),
        get(3, "k", "b", 1, 2),
        get(4, "k", "a", 3, 4),
    ])
    # Reads that both complete after both writes must agree on the last one.
    assert_violation([
        put(1, "k", "a", 0, 10),
        put(2, "k", "b", 0, 10),
        get(3, "k", "b", 11, 12),
        get(4, "k", "a", 13, 14),
    ])


def test_stale_read_after_completed_write_is_violation():
    result = assert_violation([
        put(1, "k", "a", 0, 1),
        put(1, "k", "b", 2, 3),
        get(2, "k", "a", 4, 5),
    ])
    assert "get -> 'a'" in result.explanation
    assert "'b'" in result.explanation


def test_lost_write_is_violation():
    # An acknowledged put of 'b' is never visible: later reads see the older 'a'.
    assert_violation([
        put(1, "k", "a", 0, 1),
        get(2, "k", "a", 2, 3),
        put(1, "k", "b", 4, 5),
        get(2, "k", "a", 6, 7),
        get(3, "k", "a", 8, 9),
    ])


def test_read_of_value_never_written_is_violation():
    assert_violation([put(1, "k", "a", 0, 1), get(2, "k", "zzz", 0, 5)])


def test_read_may_see_a_concurrent_write_then_old_value_is_violation():
    # Two sequential reads by one client, both overlapping the write: once
    # the new value was seen, the old one can't come back.
    assert_violation([
        put(0, "k", "a", 0, 1),
        put(1, "k", "b", 2, 20),
        get(2, "k", "b", 3, 4),
        get(2, "k", "a", 5, 6),
    ])


def test_keys_are_independent_registers():
    assert_ok([
        put(1, "x", 1, 0, 1),
        put(1, "y", 2, 2, 3),
        get(2, "x", 1, 4, 5),
        get(2, "y", 2, 4, 5),
    ])
    assert_violation([put(1, "x", 1, 0, 1), get(2, "y", 1, 2, 3)], key="y")


def test_initial_values():
    assert_ok([get(1, "k", "seed", 0, 1)], initial={"k": "seed"})
    assert_violation([get(1, "k", None, 0, 1)], initial={"k": "seed"})


def test_unhashable_values_compare_by_equality():
    assert_ok([
        put(1, "k", {"n": [1, 2]}, 0, 1),
        get(2, "k", {"n": [1, 2]}, 2, 3),
    ])
    assert_violation([
        put(1, "k", {"n": [1, 2]}, 0, 1),
        get(2, "k", {"n": [1, 3]}, 2, 3),
    ])


def test_equal_timestamps_are_concurrent():
    # A completion and an invocation in the same millisecond are not ordered.
    assert_ok([put(1, "k", "a", 0, 5), get(2, "k", None, 5, 6)])


# -- cas --------------------------------------------------------------------


def test_cas_success_and_failure_semantics():
    assert_ok([
        put(1, "k", "a", 0, 1),
        cas(1, "k", "a", "b", 2, 3),
        cas(2, "k", "a", "c", 4, 5, ok=False),
        get(3, "k", "b", 6, 7),
    ])


def test_cas_success_against_wrong_value_is_violation():
    assert_violation([put(1, "k", "a", 0, 1), cas(2, "k", "x", "b", 2, 3)])


def test_cas_failure_when_value_matched_is_violation():
    # The comparand held throughout the cas, so it can't have failed.
    assert_violation([put(1, "k", "a", 0, 1), cas(2, "k", "a", "b", 2, 3, ok=False)])


def test_cas_on_absent_key():
    assert_ok([cas(1, "k", None, "a", 0, 1), get(2, "k", "a", 2, 3)])
    assert_violation([
        put(1, "k", "z", 0, 1),
        cas(1, "k", None, "a", 2, 3),
    ])


def test_two_concurrent_cas_from_same_value_cannot_both_win():
    events = [
        put(0, "k", 0, 0, 1),
        cas(1, "k", 0, 1, 2, 10),
        cas(2, "k", 0, 2, 2, 10),
    ]
    assert_violation(events)
    assert_ok(events[:2] + [cas(2, "k", 0, 2, 2, 10, ok=False)])


def test_failed_cas_overlapping_a_write_may_see_either_value():
    assert_ok([
        put(0, "k", "a", 0, 1),
        put(1, "k", "b", 2, 10),
        cas(2, "k", "a", "c", 3, 4, ok=False),  # saw 'b' already
        get(3, "k", "b", 11, 12),
    ])


# -- ops with no answer -----------------------------------------------------


def test_pending_put_may_take_effect():
    assert_ok([
        put(1, "k", "a", 0, None, ok=None),
        get(2, "k", "a", 50, 51),
    ])


def test_pending_put_may_never_take_effect():
    assert_ok([
        put(1, "k", "a", 0, None, ok=None),
        get(2, "k", None, 50, 51),
    ])


def test_pending_put_may_take_effect_much_later():
    assert_ok([
        put(0, "k", "old", 0, 1),
        put(1, "k", "late", 2, None, ok=None),
        put(0, "k", "new", 10, 11),
        get(2, "k", "new", 12, 13),
        get(2, "k", "late", 100, 101),
    ])


def test_pending_put_takes_effect_at_most_once():
    assert_violation([
        put(1, "k", "a", 0, None, ok=None),
        get(2, "k", "a", 5, 6),
        put(3, "k", "b", 7, 8),
        get(2, "k", "a", 9, 10),
    ])


def test_pending_put_cannot_take_effect_before_invoke():
    assert_violation([
        get(2, "k", "a", 0, 1),
        put(1, "k", "a", 5, None, ok=None),
    ])


def test_ambiguous_answer_is_pending():
    # A completed call with ok None (e.g. a timeout) is treated as no answer.
    assert_ok([
        put(1, "k", "a", 0, 3, ok=None),
        get(2, "k", None, 4, 5),
        get(2, "k", "a", 6, 7),
    ])


def test_pending_cas_applies_only_when_comparand_matches():
    assert_ok([
        put(0, "k", "a", 0, 1),
        cas(1, "k", "a", "b", 2, None, ok=None),
        get(2, "k", "b", 10, 11),
    ])
    assert_violation([
        put(0, "k", "x", 0, 1),
        cas(1, "k", "a", "b", 2, None, ok=None),
        get(2, "k", "b", 10, 11),
    ])


def test_failed_put_and_get_are_ignored():
    assert_ok([
        put(1, "k", "a", 0, 1, ok=False),
        get(2, "k", "anything", 2, 3, ok=False),
        get(2, "k", None, 4, 5),
    ])


def test_pending_get_is_ignored():
    assert_ok([put(1, "k", "a", 0, 1), get(2, "k", "nonsense", 2, None, ok=None)])


# -- verdicts, explanation, validation ------------------------------------


def test_search_bound_gives_unknown():
    events = _random_history(random.Random(7), clients=8, ops=120, keys=("k",))
    result = check_history(events, configurations_max=3)
    assert result.verdict == "unknown"
    assert not result.ok
    assert "configurations_max=3" in result.explanation


def test_violation_wins_over_unknown_and_is_deterministic():
    events = _random_history(random.Random(3), clients=8, ops=100, keys=("a",))
    events.append(get(99, "z", "never", 10_000, 10_001))
    first = check_history(events, configurations_max=2)
    assert first.verdict == "violation" and first.key == "z"
    assert check_history(list(reversed(events)), configurations_max=2) == first


def test_explanation_names_the_ops_around_the_failure():
    result = assert_violation([
        put(1, "k", "a", 0, 1),
        put(2, "k", "b", 2, 3),
        put(3, "k", "c", 4, 30),
        get(4, "k", "a", 5, 6),
    ])
    text = result.explanation
    assert text.startswith("key 'k': not linearizable")
    assert "get -> 'a' (client 4, 5ms..6ms)" in text
    assert "put 'b' (client 2, 2ms..3ms)" in text
    assert "put 'c' (client 3, 4ms..30ms)" in text


def test_invalid_events_raise():
    with pytest.raises(ValueError):
        check_history([HistoryEvent(1, "delete", "k", None, None, 0, 1, True, None)])
    with pytest.raises(ValueError):
        check_history([put(1, "k", "a", 5, 4)])


# -- generated histories ----------------------------------------------------


def _random_history(
    rng: random.Random, clients: int, ops: int, keys: tuple[str, ...],
    pending_rate: float = 0.05, values: int = 5,
) -> list[HistoryEvent]:
    """Run ops against atomic registers; each takes effect inside its interval.

    Each step either invokes an op for an idle client, applies an invoked op
    (its linearization point), or completes an applied op. The clock moves
    by 0..2 ms per step, so many events share a millisecond. A few ops lose
    their answer (ok None, no completion) after being applied, and a few are
    never applied at all.
    """
    state: dict[str, object] = {}
    invoked: dict[int, dict] = {}
    applied: dict[int, dict] = {}
    events: list[HistoryEvent] = []
    now = 0
    started = 0
    while started < ops or invoked or applied:
        now += rng.randint(0, 2)
        idle = [c for c in range(clients) if c not in invoked and c not in applied]
        choices = []
        if idle and started < ops:
            choices.append("invoke")
        if invoked:
            choices.append("apply")
        if applied:
            choices.append("complete")
        action = rng.choice(choices)
        if action == "invoke":
            client = rng.choice(idle)
            op = rng.choice(("put", "cas", "get", "get"))
            invoked[client] = {
                "op": op, "key": rng.choice(keys), "start": now,
                "value": rng.randrange(values) if op != "get" else None,
                "expected": rng.choice([None, *range(values)]) if op == "cas" else None,
            }
            started += 1
        elif action == "apply":
            client = rng.choice(sorted(invoked))
            call = invoked.pop(client)
            if rng.random() < pending_rate:  # lost before it took effect
                events.append(_event(client, call, None, None, None))
                continue
            current = state.get(call["key"])
            call["ok"] = True
            if call["op"] == "get":
                call["result"] = current
            elif call["op"] == "put":
                state[call["key"]] = call["value"]
            elif current == call["expected"]:
                state[call["key"]] = call["value"]
            else:
                call["ok"] = False
            applied[client] = call
        else:
            client = rng.choice(sorted(applied))
            call = applied.pop(client)
            if rng.random() < pending_rate:  # took effect, answer lost
                events.append(_event(client, call, None, None, None))
            else:
                events.append(_event(client, call, now, call["ok"], call.get("result")))
    return events


def _event(client, call, complete, ok, result) -> HistoryEvent:
    return HistoryEvent(
        client, call["op"], call["key"], call["value"], call["expected"],
        call["start"], complete, ok, result,
    )


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    clients=st.integers(1, 6),
    ops=st.integers(0, 60),
    keys=st.integers(1, 3),
)
def test_histories_of_an_atomic_register_are_linearizable(seed, clients, ops, keys):
    rng = random.Random(seed)
    names = tuple("abc"[:keys])
    events = _random_history(rng, clients, ops, names)
    result = check_history(events)
    assert result.verdict == "ok", result.explanation


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    clients=st.integers(1, 6),
    ops=st.integers(1, 60),
)
def test_a_read_of_a_value_never_written_is_caught(seed, clients, ops):
    rng = random.Random(seed)
    events = _random_history(rng, clients, ops, ("a", "b"))
    reads = [i for i, e in enumerate(events)
             if e.op == "get" and e.ok and e.complete_ms is not None]
    if not reads:
        return
    victim = events[rng.choice(reads)]
    events[events.index(victim)] = HistoryEvent(
        victim.client, "get", victim.key, None, None, victim.invoke_ms,
        victim.complete_ms, True, "never-written",
    )
    result = check_history(events)
    assert result.verdict == "violation"
    assert result.key == victim.key
    assert "never-written" in result.explanation


def test_three_keys_200_ops_8_clients_is_fast():
    worst = 0.0
    for seed in range(10):
        events = _random_history(random.Random(seed), clients=8, ops=600,
                                 keys=("a", "b", "c"))
        started = time.perf_counter()
        result = check_history(events)
        worst = max(worst, time.perf_counter() - started)
        assert result.verdict == "ok", result.explanation
    # Measured well under 0.1 s on a laptop; the bound only catches blow-ups.
    assert worst < 1.0, worst


def _brute_force_ok(events: list[HistoryEvent]) -> bool:
    """Try every order of every subset of the unanswered ops (tiny histories)."""
    from itertools import permutations

    required, optional = [], []
    for e in events:
        if e.ok is False and e.op != "cas":
            continue
        answered = e.complete_ms is not None and e.ok is not None
        if e.op == "get" and not answered:
            continue
        if e.ok is False and e.complete_ms is None:
            continue
        (required if answered else optional).append(e)

    def end(e):
        return e.complete_ms if (e.complete_ms is not None and e.ok is not None) else float("inf")

    def legal(order) -> bool:
        for a_index, a in enumerate(order):
            for b in order[:a_index]:
                if end(a) < b.invoke_ms:
                    return False  # a finished before b began, yet b is first
        value = None
        for e in order:
            if e.op == "get":
                if value != e.result:
                    return False
            elif e.op == "put":
                value = e.value
            elif e.ok is False:
                if value == e.expected:
                    return False
            elif value == e.expected:
                value = e.value
            elif e.ok:
                return False
        return True

    for mask in range(1 << len(optional)):
        chosen = required + [o for i, o in enumerate(optional) if mask >> i & 1]
        if any(legal(order) for order in permutations(chosen)):
            return True
    return False


@settings(max_examples=400, deadline=None)
@given(st.lists(
    st.tuples(
        st.sampled_from(("put", "cas", "get")),
        st.integers(0, 2), st.sampled_from([None, 0, 1, 2]),
        st.integers(0, 8), st.one_of(st.none(), st.integers(0, 6)),
        st.sampled_from([True, True, False, None]),
    ),
    max_size=6,
))
def test_agrees_with_brute_force_on_tiny_histories(specs):
    events = []
    for client, (op, value, other, start, length, ok) in enumerate(specs):
        complete = None if length is None else start + length
        if op == "get":
            events.append(get(client, "k", other, start, complete, ok))
        elif op == "put":
            events.append(put(client, "k", value, start, complete, ok))
        else:
            events.append(cas(client, "k", other, value, start, complete, ok))
    expected = _brute_force_ok(events)
    assert check_history(events).ok == expected
