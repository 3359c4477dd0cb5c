"""DynamoDB expressions: one tokenizer, one grammar, one evaluator.

Pipeline: tokens (tokens.py) -> cached syntax tree (grammar/parser.py,
tree.py) -> per-request validation and resolution of names and values
(resolve.py, context.py) -> execution (evaluate.py for conditions and
filters, update.py, projection.py, key_condition.py). legacy.py builds the
same executable objects from the pre-expression request parameters.
"""
from .api import parse_condition, parse_projection, parse_update
from .context import ExpressionContext
from .evaluate import Condition
from .key_condition import IndexKeyCondition, KeyCondition, parse_index_key_condition, parse_key_condition
from .legacy import (
    check_no_mixing,
    condition_from_expected,
    condition_from_filter,
    index_key_condition_from_key_conditions,
    key_condition_from_key_conditions,
    projection_from_attributes_to_get,
    update_from_attribute_updates,
)
from .projection import Projection
from .update import UpdatePlan

__all__ = [
    "Condition", "ExpressionContext", "IndexKeyCondition", "KeyCondition", "Projection",
    "UpdatePlan", "check_no_mixing", "condition_from_expected", "condition_from_filter",
    "index_key_condition_from_key_conditions", "key_condition_from_key_conditions",
    "parse_condition", "parse_index_key_condition", "parse_key_condition",
    "parse_projection", "parse_update", "projection_from_attributes_to_get",
    "update_from_attribute_updates",
]
