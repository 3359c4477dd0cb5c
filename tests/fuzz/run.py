"""The fuzz runs: each drives one family of cases through hypothesis.

`examples` bounds a run; `seed` None with `derandomize` gives the same cases
every time (what `make test` uses), a number gives a fresh set (`make fuzz`).
"""
from __future__ import annotations

from typing import Any, Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed

from tests.fuzz import expressions, mutations, raw, shapes
from tests.fuzz.harness import Target


def _run(strategy: Any, act: Callable[[Any], None], examples: int, seed: int | None) -> None:
    chosen = settings(max_examples=examples, deadline=None, database=None,
                      derandomize=seed is None, suppress_health_check=list(HealthCheck),
                      print_blob=True)

    @chosen
    @given(strategy)
    def case(value: Any) -> None:
        act(value)

    if seed is not None:
        case = hypothesis_seed(seed)(case)
    case()


def shape_requests(target: Target, examples: int, seed: int | None = None) -> None:
    """Requests generated from every operation's input shape."""
    _run(shapes.any_request(), lambda request: target.request_case(*request, kind="shape"),
         examples, seed)


def mutated_requests(target: Target, examples: int, seed: int | None = None) -> None:
    """Valid requests with one to three spots damaged."""
    _run(mutations.mutated(), lambda request: target.request_case(*request, kind="mutation"),
         examples, seed)


def expression_requests(target: Target, examples: int, seed: int | None = None) -> None:
    """Valid skeletons with generated expressions and the names and values they use."""
    _run(expressions.expression_requests(),
         lambda request: target.request_case(*request, kind="expression"), examples, seed)


def raw_bodies(target: Target, examples: int, seed: int | None = None) -> None:
    """Noise, wrong JSON, odd content types and encodings."""
    _run(raw.bodies(), lambda case: target.body_case(*case), examples, seed)


def raw_sockets(target: Target, examples: int, seed: int | None = None) -> None:
    """Bytes that are barely (or not) HTTP, on fresh connections."""
    _run(raw.socket_bytes(), target.socket_case, examples, seed)


RUNS = (shape_requests, mutated_requests, expression_requests, raw_bodies, raw_sockets)
