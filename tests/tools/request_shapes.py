"""Generate src/triplica/engine/operations/request_shapes.py from botocore's service model.

The server cannot import botocore (a test dependency), so the JSON types of
every request member of the operations triplica implements are written out
as a table once. `python -m tests.tools.request_shapes` rewrites the module;
tests/unit/test_request_types.py fails when the table and the installed
model disagree.
"""
from __future__ import annotations

import pprint
import sys
from typing import Any

import botocore.session

HEADER = '''"""JSON types of the request members of every operation triplica implements.

Generated from botocore's DynamoDB service model by
`python -m tests.tools.request_shapes`; do not edit by hand.

SHAPES maps a shape name to ("structure", {member: shape}), ("list", member
shape), ("map", value shape), ("attribute_value",) (checked by
model/values.py) or a scalar kind: "string", "integer", "long", "boolean",
"blob", "double", "timestamp". OPERATION_INPUTS names each operation's input
shape.
"""
'''


def generate(operations: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    model = botocore.session.get_session().get_service_model("dynamodb")
    shapes: dict[str, Any] = {}

    def visit(shape: Any) -> str:
        name = shape.name
        if name in shapes:
            return name
        if name == "AttributeValue":
            shapes[name] = ("attribute_value",)
            return name
        kind = shape.type_name
        shapes[name] = None   # placeholder: recursive shapes
        if kind == "structure":
            shapes[name] = ("structure", {member: visit(inner)
                                          for member, inner in shape.members.items()})
        elif kind == "list":
            shapes[name] = ("list", visit(shape.member))
        elif kind == "map":
            shapes[name] = ("map", visit(shape.value))
        else:
            shapes[name] = (kind,)
        return name

    inputs = {}
    for operation in sorted(operations):
        inputs[operation] = visit(model.operation_model(operation).input_shape)
    return dict(sorted(shapes.items())), inputs


def implemented_operations() -> list[str]:
    import triplica.api.app  # noqa: F401  (registers the handlers)
    from triplica.engine.operations.service import OPERATIONS
    return sorted(OPERATIONS)


def render(shapes: dict[str, Any], inputs: dict[str, str]) -> str:
    return (HEADER + "\nSHAPES = " + pprint.pformat(shapes, width=99, sort_dicts=False)
            + "\n\nOPERATION_INPUTS = " + pprint.pformat(inputs, width=99, sort_dicts=False)
            + "\n")


def main() -> int:
    shapes, inputs = generate(implemented_operations())
    with open("src/triplica/engine/operations/request_shapes.py", "w") as out:
        out.write(render(shapes, inputs))
    print(f"{len(shapes)} shapes, {len(inputs)} operations", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
