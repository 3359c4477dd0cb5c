"""Shared helpers for the scripted expression tests."""
from __future__ import annotations

from triplica.errors import ValidationException
from triplica.expressions import ExpressionContext


def S(text):
    return {"S": text}


def N(text):
    return {"N": str(text)}


def L(*values):
    return {"L": list(values)}


def M(**values):
    return {"M": dict(values)}


def outcome(function, *args, **kwargs):
    """Return the function's result, or ("error", message) on ValidationException."""
    try:
        return function(*args, **kwargs)
    except ValidationException as error:
        return ("error", error.message)


def context(names=None, values=None):
    return ExpressionContext(names, values)
