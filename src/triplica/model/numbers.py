"""DynamoDB numbers: parsing, range checks, canonical text and exact arithmetic.

This module owns the N type's rules ("Data types > Number" in the DynamoDB
Developer Guide): up to 38 significant digits, magnitude between 1E-130 and
9.9999999999999999999999999999999999999E+125, plus zero. Leading and trailing
zeros are not significant.

Invariants:
- Floats never appear. Values are `decimal.Decimal`; every operation that
  could round runs under the explicit local context `_EXACT` (huge precision,
  Inexact trapped) so results are exact or an error, never silently rounded.
  The thread's global decimal context is never used or changed.
- A Decimal returned by this module is in range, has at most 38 significant
  digits and carries no trailing zeros in its coefficient (1.50 -> 1.5);
  zero is always positive `Decimal(0)`.
- `format_number` gives DynamoDB's canonical wire text: plain notation, no
  leading zeros, no trailing fractional zeros, "0" for zero.
"""
from __future__ import annotations

import re
from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow, Underflow

from triplica.errors import ValidationException
from triplica.model.limits import (
    NUMBER_DIGITS_MAX,
    NUMBER_EXPONENT_MAX,
    NUMBER_EXPONENT_MIN,
)

MESSAGE_NOT_NUMERIC = "The parameter cannot be converted to a numeric value: "
MESSAGE_TOO_MANY_DIGITS = "Attempting to store more than 38 significant digits in a Number"
MESSAGE_OVERFLOW = (
    "Number overflow. Attempting to store a number with magnitude larger than supported range"
)
MESSAGE_UNDERFLOW = (
    "Number underflow. Attempting to store a number with magnitude smaller than supported range"
)

# Sum or difference of two in-range 38-digit numbers spans at most
# 126 + 130 + 38 + 1 digits, so 400 digits of precision make them exact. Inexact
# is trapped anyway so a broken assumption fails loudly instead of rounding.
_EXACT = Context(
    prec=400,
    Emax=999_999,
    Emin=-999_999,
    traps=[InvalidOperation, Inexact, Overflow, Underflow],
)

# ASCII only: Decimal() itself would accept "1_0", " 1", "NaN" and Unicode digits.
_NUMBER_RE = re.compile(
    r"([+-]?)(?:([0-9]+)(?:\.([0-9]*))?|\.([0-9]+))(?:[eE]([+-]?[0-9]+))?"
)
# Already-canonical short numbers: plain integers and decimals without
# superfluous zeros. With at most 38 characters they cannot exceed 38 digits
# nor leave the exponent range, so they are returned unchanged.
_CANONICAL_RE = re.compile(r"0|-?(?:[1-9][0-9]*|(?:0|[1-9][0-9]*)\.[0-9]*[1-9])")
_CANONICAL_LENGTH_MAX = 38
_EXPONENT_TEXT_LENGTH_MAX = 12  # longer exponents are far out of range (or zero)

_ZERO = Decimal(0)


def parse_number(text: str) -> Decimal:
    """Parse DynamoDB number text; raise ValidationException when invalid.

    Accepts an optional sign, digits with an optional fraction (".5" and "5."
    too) and an optional exponent. Range is checked before digit count.
    """
    negative, digits, last_exponent = _parse_parts(text)
    if not digits:
        return _ZERO
    return Decimal(f"{'-' if negative else ''}{digits}E{last_exponent}")


def format_number(value: Decimal) -> str:
    """Return DynamoDB's canonical text for a finite Decimal (no exponent)."""
    assert value.is_finite(), value
    sign, digit_tuple, exponent = value.as_tuple()
    digits = "".join(map(str, digit_tuple)).lstrip("0")
    stripped = digits.rstrip("0")
    return _format_parts(bool(sign), stripped, exponent + len(digits) - len(stripped))


def normalize_number(text: str) -> str:
    """Validate number text and return its canonical form."""
    if (
        type(text) is str
        and len(text) <= _CANONICAL_LENGTH_MAX
        and _CANONICAL_RE.fullmatch(text) is not None
    ):
        return text
    return _format_parts(*_parse_parts(text))


def _parse_parts(text: str) -> tuple[bool, str, int]:
    """Validate text; return (negative, significant digits, exponent of last digit)."""
    if not isinstance(text, str):
        raise ValidationException(MESSAGE_NOT_NUMERIC + str(text))
    match = _NUMBER_RE.fullmatch(text)
    if match is None:
        raise ValidationException(MESSAGE_NOT_NUMERIC + text)
    sign, integer, fraction, bare_fraction, exponent_text = match.groups()
    if bare_fraction is not None:
        integer, fraction = "", bare_fraction
    fraction = fraction or ""
    significant = (integer + fraction).lstrip("0")
    if not significant:
        return (False, "", 0)
    stripped = significant.rstrip("0")
    if exponent_text is None:
        exponent = 0
    else:
        exponent_digits = exponent_text.lstrip("+-").lstrip("0") or "0"
        negative_exponent = exponent_text.startswith("-")
        if len(exponent_digits) > _EXPONENT_TEXT_LENGTH_MAX:
            raise ValidationException(
                MESSAGE_UNDERFLOW if negative_exponent else MESSAGE_OVERFLOW
            )
        exponent = -int(exponent_digits) if negative_exponent else int(exponent_digits)
    last_exponent = exponent - len(fraction) + len(significant) - len(stripped)
    _check_range(last_exponent + len(stripped) - 1)
    if len(stripped) > NUMBER_DIGITS_MAX:
        raise ValidationException(MESSAGE_TOO_MANY_DIGITS)
    return (sign == "-", stripped, last_exponent)


def _format_parts(negative: bool, digits: str, last_exponent: int) -> str:
    """Plain-notation text for digits (no leading/trailing zeros) * 10**last_exponent."""
    if not digits:
        return "0"
    if last_exponent >= 0:
        text = digits + "0" * last_exponent
    else:
        point = len(digits) + last_exponent
        if point > 0:
            text = digits[:point] + "." + digits[point:]
        else:
            text = "0." + "0" * (-point) + digits
    return "-" + text if negative else text


def number_parts(value: Decimal) -> tuple[bool, str, int]:
    """Split a number into (negative, significant digits, adjusted exponent).

    The digits carry no leading or trailing zeros; the adjusted exponent is
    the power of ten of the first digit. Zero is (False, "", 0).
    """
    sign, digit_tuple, exponent = value.as_tuple()
    digits = "".join(map(str, digit_tuple)).lstrip("0")
    if not digits:
        return (False, "", 0)
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    return (bool(sign), stripped, exponent + len(stripped) - 1)


def add_numbers(a: Decimal | str, b: Decimal | str) -> Decimal:
    """Exact a + b (DynamoDB ADD / SET a + b).

    Choice: a result that needs more than 38 significant digits raises
    ValidationException("Attempting to store more than 38 significant digits
    in a Number") instead of rounding; an out-of-range result raises the
    overflow/underflow error (range is checked first).
    """
    return _checked(_EXACT.add(_as_decimal(a), _as_decimal(b)))


def subtract_numbers(a: Decimal | str, b: Decimal | str) -> Decimal:
    """Exact a - b, with the same error rules as `add_numbers`."""
    return _checked(_EXACT.subtract(_as_decimal(a), _as_decimal(b)))


_SMALL_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")


def add_number_texts(a: str, b: str, subtract: bool = False) -> str:
    """Canonical text of a + b (or a - b) for two canonical number texts.

    Counters ("SET n = n + :one") are the common case: when both operands are
    integers below 10**18 the exact sum fits in 19 digits, so plain int
    arithmetic is exact and needs no range check.
    """
    if _SMALL_INTEGER.fullmatch(a) and _SMALL_INTEGER.fullmatch(b):
        return str(int(a) - int(b) if subtract else int(a) + int(b))
    result = subtract_numbers(a, b) if subtract else add_numbers(a, b)
    return format_number(result)


def _as_decimal(value: Decimal | str) -> Decimal:
    if isinstance(value, Decimal):
        assert value.is_finite(), value
        return value
    return parse_number(value)


def _checked(result: Decimal) -> Decimal:
    negative, digits, adjusted = number_parts(result)
    if not digits:
        return _ZERO
    _check_range(adjusted)
    if len(digits) > NUMBER_DIGITS_MAX:
        # DynamoDB reports an arithmetic result it cannot hold in 38 digits
        # (1e50 + 1) as an overflow, not as the input error about digits.
        raise ValidationException(MESSAGE_OVERFLOW)
    return Decimal(f"{'-' if negative else ''}{digits}E{adjusted - len(digits) + 1}")


def _check_range(adjusted_exponent: int) -> None:
    if adjusted_exponent > NUMBER_EXPONENT_MAX:
        raise ValidationException(MESSAGE_OVERFLOW)
    if adjusted_exponent < NUMBER_EXPONENT_MIN:
        raise ValidationException(MESSAGE_UNDERFLOW)
