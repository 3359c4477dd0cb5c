"""Property test: the engine agrees with a tiny, obviously-correct reference.

The reference works on Python tuples and plain values (str / int), knows only
top-level attributes, comparisons, AND/OR/NOT, attribute_exists, begins_with
and SET/REMOVE/ADD, and shares no code with triplica.expressions.
"""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from triplica.errors import ValidationException
from triplica.expressions import ExpressionContext, parse_condition, parse_update

NAMES = ["a", "b", "c", "d"]
OPS = ["=", "<>", "<", "<=", ">", ">="]

scalars = st.one_of(
    st.tuples(st.just("S"), st.text(alphabet="abc", max_size=3)),
    st.tuples(st.just("N"), st.integers(-5, 5)),
)
items = st.dictionaries(st.sampled_from(NAMES), scalars)


def wire(value):
    kind, raw = value
    return {kind: str(raw)}


# -- reference evaluator --------------------------------------------------------
def ref_eval(node, item):
    tag = node[0]
    if tag == "and":
        return ref_eval(node[1], item) and ref_eval(node[2], item)
    if tag == "or":
        return ref_eval(node[1], item) or ref_eval(node[2], item)
    if tag == "not":
        return not ref_eval(node[1], item)
    if tag == "exists":
        return node[1] in item
    if tag == "begins":
        have = item.get(node[1])
        want = node[2]
        return have is not None and have[0] == "S" and want[0] == "S" and have[1].startswith(want[1])
    _, op, name, value = node
    have = item.get(name)
    if have is None or have[0] != value[0]:
        return op == "<>"
    x, y = have[1], value[1]
    return {"=": x == y, "<>": x != y, "<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]


# -- generated expressions ---------------------------------------------------------
leaves = st.one_of(
    st.tuples(st.just("cmp"), st.sampled_from(OPS), st.sampled_from(NAMES), scalars),
    st.tuples(st.just("exists"), st.sampled_from(NAMES)),
    st.tuples(st.just("begins"), st.sampled_from(NAMES),
              st.tuples(st.just("S"), st.text(alphabet="abc", max_size=2))),
)
conditions = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.tuples(st.just("and"), inner, inner),
        st.tuples(st.just("or"), inner, inner),
        st.tuples(st.just("not"), inner),
    ),
    max_leaves=8,
)
LEVEL = {"or": 1, "and": 2, "not": 3}


def render(node, values, upper):
    """Text with only the parentheses precedence needs; returns (text, level)."""
    def keyword(word):
        return word.upper() if upper else word.lower()

    def placeholder(value):
        key = f":v{len(values)}"
        values[key] = wire(value)
        return key

    def child(sub, level_min):
        text, level = render(sub, values, upper)
        return text if level >= level_min else f"({text})"

    tag = node[0]
    if tag in ("and", "or"):
        level = LEVEL[tag]
        return f"{child(node[1], level)} {keyword(tag)} {child(node[2], level)}", level
    if tag == "not":
        return f"{keyword('not')} {child(node[1], 3)}", 3
    if tag == "exists":
        return f"attribute_exists({node[1]})", 4
    if tag == "begins":
        return f"begins_with({node[1]}, {placeholder(node[2])})", 4
    return f"{node[2]} {node[1]} {placeholder(node[3])}", 4


@settings(max_examples=300, deadline=None)
@given(condition=conditions, item=items, upper=st.booleans())
def test_condition_matches_reference(condition, item, upper):
    values: dict = {}
    text, _ = render(condition, values, upper)
    ctx = ExpressionContext(None, values or None)
    engine = parse_condition(text, ctx).evaluate({k: wire(v) for k, v in item.items()})
    assert engine == ref_eval(condition, item), text


# -- updates ---------------------------------------------------------------------------
actions = st.lists(
    st.one_of(
        st.tuples(st.just("SET"), st.sampled_from(NAMES), scalars),
        st.tuples(st.just("REMOVE"), st.sampled_from(NAMES)),
        st.tuples(st.just("ADD"), st.sampled_from(NAMES), st.tuples(st.just("N"), st.integers(-5, 5))),
    ),
    min_size=1, max_size=5,
)


def ref_update(steps, item):
    """Returns the new item or the string 'error'."""
    names = [step[1] for step in steps]
    if len(set(names)) != len(names):
        return "error"
    result = dict(item)
    for step in steps:
        if step[0] == "SET":
            result[step[1]] = step[2]
        elif step[0] == "REMOVE":
            result.pop(step[1], None)
        else:
            have = result.get(step[1])
            if have is None:
                result[step[1]] = step[2]
            elif have[0] != "N":
                return "error"
            else:
                result[step[1]] = ("N", have[1] + step[2][1])
    return result


def render_update(steps, values):
    clauses: dict[str, list[str]] = {}
    for step in steps:
        if step[0] == "REMOVE":
            clauses.setdefault("REMOVE", []).append(step[1])
            continue
        key = f":v{len(values)}"
        values[key] = wire(step[2])
        joiner = " = " if step[0] == "SET" else " "
        clauses.setdefault(step[0], []).append(step[1] + joiner + key)
    return " ".join(f"{clause} {', '.join(parts)}" for clause, parts in clauses.items())


@settings(max_examples=300, deadline=None)
@given(steps=actions, item=items)
def test_update_matches_reference(steps, item):
    values: dict = {}
    text = render_update(steps, values)
    expected = ref_update(steps, item)
    try:
        plan = parse_update(text, ExpressionContext(None, values or None))
        got = plan.apply({k: wire(v) for k, v in item.items()})
    except ValidationException:
        got = "error"
    if expected != "error":
        expected = {k: wire(v) for k, v in expected.items()}
    assert got == expected, text
