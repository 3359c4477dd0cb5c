"""Linearizability checker for per-key register histories.

Owns one question: could the operations clients saw (put, cas, get on
string keys, each with an invoke time and maybe a completion time) have
happened one at a time, each at an instant between its invoke and its
completion, on a plain register per key? Keys are independent registers
(linearizability is local, Herlihy & Wing 1990), so the history is split by
key and each key is searched on its own.

The search is Lowe's just-in-time linearization tree search ("Testing for
linearizability", Concurrency and Computation 2017), which refines Wing &
Gong's: walk the completions in time order, and only when an operation's
completion is reached linearize it, preceded by any sequence of operations
already invoked and not yet linearized. Configurations (completions passed,
set of linearized ops, register value) are memoized, so permutations that
reach the same configuration are explored once. Two reductions on top, both
sound and complete:
- a completed read-only op (a get, a failed cas) that is legal in the
  current value is linearized at once with no branching: a read changes no
  value, so moving it earlier changes nothing anyone else observes (this
  does not hold for a write of the current value: it would be missing
  where it really took effect);
- an op that never completed (or whose answer was ambiguous) need not be
  linearized at all, so it is only tried when it changes the value.

Event semantics (see `history.HistoryEvent`): `ok False` on a completed cas
is an observation (the value differed from `expected` at some instant in
the interval); `ok False` on put/get is a known no-op and is ignored;
`complete_ms None` or `ok None` means "may take effect at any time after
invoke, or never". Completions and invocations in the same millisecond are
treated as concurrent (the checker never orders what the clock can't).

The search is bounded: past `configurations_max` configurations for one key
the verdict is 'unknown', never a guess. The checker is pure and
deterministic: same events, same verdict and same explanation.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from triplica.sim.history import HistoryEvent

Verdict = Literal["ok", "violation", "unknown"]

CONFIGURATIONS_MAX_DEFAULT = 1_000_000
EXPLANATION_OPS_MAX = 8

# Operation kinds after normalisation.
_WRITE = 0        # completed put: always legal, value := v
_CAS = 1          # completed successful cas: legal iff value == expected
_READ_EQ = 2      # completed get: legal iff value == result
_READ_NE = 3      # completed failed cas: legal iff value != expected
_MAYBE_WRITE = 4  # unanswered put: optional, value := v
_MAYBE_CAS = 5    # unanswered cas: optional, useful only if value == expected


@dataclass(frozen=True)
class CheckResult:
    verdict: Verdict
    key: str | None
    explanation: str
    configurations: int = 0

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"


@dataclass(frozen=True)
class _Op:
    event: HistoryEvent
    kind: int
    arg: int      # value id written (writes, cas) or read (get)
    expected: int  # comparand id (cas kinds), -1 otherwise
    invoke_ms: int
    complete_ms: int | None  # None: optional op with no completion


class _Interner:
    """Maps values to small ints by equality, hashable or not."""

    def __init__(self) -> None:
        self._hashable: dict[Any, int] = {}
        self._unhashable: list[tuple[Any, int]] = []
        self.values: list[Any] = []

    def id(self, value: Any) -> int:
        try:
            found = self._hashable.get(value)
        except TypeError:
            return self._id_unhashable(value)
        if found is None:
            found = self._new(value)
            self._hashable[value] = found
        return found

    def _id_unhashable(self, value: Any) -> int:
        for known, ident in self._unhashable:
            if known == value:
                return ident
        ident = self._new(value)
        self._unhashable.append((value, ident))
        return ident

    def _new(self, value: Any) -> int:
        self.values.append(value)
        return len(self.values) - 1


def check_history(
    events: Iterable[HistoryEvent],
    initial: Mapping[str, Any] | None = None,
    configurations_max: int = CONFIGURATIONS_MAX_DEFAULT,
) -> CheckResult:
    """Check a whole history, key by key, in sorted key order.

    `initial` gives a key's value before the history (absent keys start as
    None, meaning "item absent"). The first violating key wins; otherwise
    any key the search could not finish makes the verdict 'unknown'.
    """
    by_key: dict[str, list[HistoryEvent]] = {}
    for event in events:
        _validate(event)
        by_key.setdefault(event.key, []).append(event)
    initial = initial or {}
    total = 0
    unknown: CheckResult | None = None
    for key in sorted(by_key):
        result = check_key(key, by_key[key], initial.get(key), configurations_max)
        total += result.configurations
        if result.verdict == "violation":
            return CheckResult("violation", key, result.explanation, total)
        if result.verdict == "unknown" and unknown is None:
            unknown = result
    if unknown is not None:
        return CheckResult("unknown", unknown.key, unknown.explanation, total)
    count = sum(len(v) for v in by_key.values())
    return CheckResult(
        "ok", None, f"{count} ops on {len(by_key)} keys are linearizable", total
    )


def check_key(
    key: str,
    events: list[HistoryEvent],
    initial: Any = None,
    configurations_max: int = CONFIGURATIONS_MAX_DEFAULT,
) -> CheckResult:
    """Check the events of one key (all must carry that key)."""
    interner = _Interner()
    start = interner.id(initial)
    ops = _normalise(events, interner)
    search = _Search(ops, start, configurations_max)
    verdict = search.run()
    if verdict == "ok":
        explanation = f"key {key!r}: {len(ops)} ops are linearizable"
    elif verdict == "unknown":
        explanation = (
            f"key {key!r}: search stopped after {search.explored} "
            f"configurations (configurations_max={configurations_max}); "
            f"{search.deepest} of {len(search.returns)} completions ordered"
        )
    else:
        explanation = _explain(key, search, interner)
    return CheckResult(verdict, key, explanation, search.explored)


def _validate(event: HistoryEvent) -> None:
    if event.op not in ("put", "cas", "get"):
        raise ValueError(f"unknown op {event.op!r} in {event}")
    if event.complete_ms is not None and event.complete_ms < event.invoke_ms:
        raise ValueError(f"completion before invocation in {event}")


def _normalise(events: list[HistoryEvent], interner: _Interner) -> list[_Op]:
    ops: list[_Op] = []
    for event in sorted(events, key=_event_order):
        op = _normalise_one(event, interner)
        if op is not None:
            ops.append(op)
    return ops


def _event_order(event: HistoryEvent) -> tuple:
    complete = event.complete_ms if event.complete_ms is not None else -1
    return (event.invoke_ms, complete, event.client, event.op)


def _normalise_one(event: HistoryEvent, interner: _Interner) -> _Op | None:
    answered = event.complete_ms is not None and event.ok is not None
    if event.ok is False and event.op != "cas":
        return None  # known no-op
    if event.op == "get":
        if not answered:
            return None  # an unanswered read constrains nothing
        return _Op(event, _READ_EQ, interner.id(event.result), -1,
                   event.invoke_ms, event.complete_ms)
    value = interner.id(event.value)
    if event.op == "put":
        if answered:
            return _Op(event, _WRITE, value, -1, event.invoke_ms, event.complete_ms)
        return _Op(event, _MAYBE_WRITE, value, -1, event.invoke_ms, None)
    expected = interner.id(event.expected)
    if event.ok is False:
        if event.complete_ms is None:
            return None  # definitely no effect, and no instant to observe at
        return _Op(event, _READ_NE, value, expected, event.invoke_ms, event.complete_ms)
    if answered:
        return _Op(event, _CAS, value, expected, event.invoke_ms, event.complete_ms)
    return _Op(event, _MAYBE_CAS, value, expected, event.invoke_ms, None)


def _step(op: _Op, state: int) -> int:
    """The register value after `op` in `state`, or -1 if `op` is illegal."""
    kind = op.kind
    if kind == _WRITE or kind == _MAYBE_WRITE:
        return op.arg
    if kind == _CAS or kind == _MAYBE_CAS:
        return op.arg if state == op.expected else -1
    if kind == _READ_EQ:
        return state if state == op.arg else -1
    return state if state != op.expected else -1  # _READ_NE


class _Search:
    """Depth-first JIT linearization search over memoized configurations.

    A configuration is (j, state, linearized) where j indexes `returns` (the
    completed ops in completion order): every op completing before
    returns[j] is in `linearized`, and returns[j] is not. At j ==
    len(returns) every completed op is linearized: success.
    """

    def __init__(self, ops: list[_Op], start: int, configurations_max: int) -> None:
        self.ops = ops
        self.start = start
        self.configurations_max = configurations_max
        self.returns = sorted(
            (i for i, op in enumerate(ops) if op.complete_ms is not None),
            key=lambda i: (ops[i].complete_ms, ops[i].invoke_ms, i),
        )
        self.candidates = self._candidates()
        self.explored = 0
        self.deepest = 0
        self.deepest_states: set[int] = set()
        self.deepest_config: tuple[int, int, int] | None = None
        self.parents: dict[tuple[int, int, int], tuple[tuple[int, int, int] | None, tuple[int, ...]]] = {}

    def _candidates(self) -> list[list[int]]:
        """For each j: ops invoked by returns[j]'s completion, not yet returned.

        Ops completing before returns[j] are always linearized at j, so
        they are left out; ops with no completion stay in every later list.
        """
        ops = self.ops
        by_invoke = sorted(range(len(ops)), key=lambda i: (ops[i].invoke_ms, i))
        return_rank = {op_index: j for j, op_index in enumerate(self.returns)}
        result: list[list[int]] = []
        open_ops: list[int] = []
        cursor = 0
        for j, op_index in enumerate(self.returns):
            now = ops[op_index].complete_ms
            while cursor < len(by_invoke) and ops[by_invoke[cursor]].invoke_ms <= now:
                open_ops.append(by_invoke[cursor])
                cursor += 1
            open_ops = [i for i in open_ops if return_rank.get(i, j) >= j]
            result.append(list(open_ops))
        return result

    def run(self) -> Verdict:
        if not self.returns:
            return "ok"
        root = self._settle(0, self.start, 0, None)
        stack = [root]
        while stack:
            config = stack.pop()
            j, state, linearized = config
            if j == len(self.returns):
                return "ok"
            if self.explored >= self.configurations_max:
                return "unknown"
            self.explored += 1
            self._note_depth(config)
            children = self._expand(config)
            stack.extend(reversed(children))
        return "violation"

    def _expand(self, config: tuple[int, int, int]) -> list[tuple[int, int, int]]:
        j, state, linearized = config
        target = self.returns[j]
        children = []
        for i in self.candidates[j]:
            if linearized >> i & 1:
                continue
            op = self.ops[i]
            if op.kind == _READ_EQ or op.kind == _READ_NE:
                continue  # legal reads were taken by _settle
            after = _step(op, state)
            if after < 0 or (after == state and op.complete_ms is None):
                continue  # illegal, or an optional op that changes nothing
            child = self._settle(j, after, linearized | (1 << i), config, i)
            if child is None:
                continue
            if i == target:
                children.insert(0, child)  # closing the completion first
            else:
                children.append(child)
        return children

    def _settle(self, j: int, state: int, linearized: int,
                parent: tuple[int, int, int] | None, op_index: int = -1):
        """Linearize every legal completed read, pass linearized returns.

        Returns the new configuration, or None if it was already seen.
        """
        taken = [op_index] if op_index >= 0 else []
        while True:
            while j < len(self.returns) and linearized >> self.returns[j] & 1:
                j += 1
            if j == len(self.returns):
                break
            progressed = False
            for i in self.candidates[j]:
                op = self.ops[i]
                if linearized >> i & 1:
                    continue
                if (op.kind == _READ_EQ or op.kind == _READ_NE) and _step(op, state) >= 0:
                    linearized |= 1 << i
                    taken.append(i)
                    progressed = True
            if not progressed:
                break
        config = (j, state, linearized)
        if config in self.parents:
            return None
        self.parents[config] = (parent, tuple(taken))
        return config

    def _note_depth(self, config: tuple[int, int, int]) -> None:
        j, state, _ = config
        if j > self.deepest or self.deepest_config is None:
            self.deepest = j
            self.deepest_states = set()
            self.deepest_config = config
        if j == self.deepest:
            self.deepest_states.add(state)

    def path(self, config: tuple[int, int, int]) -> list[int]:
        """The op indexes linearized on the way to `config`, in order."""
        chunks: list[tuple[int, ...]] = []
        current: tuple[int, int, int] | None = config
        while current is not None:
            parent, taken = self.parents[current]
            chunks.append(taken)
            current = parent
        return [i for chunk in reversed(chunks) for i in chunk]


def _explain(key: str, search: _Search, interner: _Interner) -> str:
    """Name the completion no order could explain, and what surrounded it."""
    ops = search.ops
    config = search.deepest_config
    assert config is not None
    j = config[0]
    stuck = ops[search.returns[j]]
    values = ", ".join(sorted(repr(interner.values[s]) for s in search.deepest_states))
    lines = [
        f"key {key!r}: not linearizable; no order explains "
        f"{_describe(stuck, interner)}",
        f"  possible values of {key!r} when it completed: {values}",
    ]
    prefix = search.path(config)
    tail = prefix[-EXPLANATION_OPS_MAX:]
    if tail:
        lines.append(f"  last ops of one longest valid order ({len(prefix)} ops):")
        lines.extend(f"    {_describe(ops[i], interner)}" for i in tail)
    concurrent = [i for i in search.candidates[j] if not config[2] >> i & 1]
    # Answered ops first (they had to fit), then the most recent unanswered.
    others = sorted(
        (i for i in concurrent if i != search.returns[j]),
        key=lambda i: (ops[i].complete_ms is None, -ops[i].invoke_ms, i),
    )[:EXPLANATION_OPS_MAX]
    if others:
        lines.append("  ops open at that point, not yet ordered:")
        lines.extend(f"    {_describe(ops[i], interner)}" for i in others)
    return "\n".join(lines)


def _describe(op: _Op, interner: _Interner) -> str:
    event = op.event
    end = "no answer" if event.complete_ms is None else f"{event.complete_ms}ms"
    when = f"client {event.client}, {event.invoke_ms}ms..{end}"
    if event.op == "get":
        return f"get -> {event.result!r} ({when})"
    if event.op == "put":
        status = "" if op.kind == _WRITE else ", outcome unknown"
        return f"put {event.value!r} ({when}{status})"
    if op.kind == _READ_NE:
        status = "failed"
    elif op.kind == _CAS:
        status = "ok"
    else:
        status = "outcome unknown"
    return f"cas {event.expected!r} -> {event.value!r} ({when}, {status})"
