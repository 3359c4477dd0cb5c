"""Unit tests for triplica.model.numbers: parsing, canonical text, arithmetic."""
from __future__ import annotations

from decimal import Context, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from triplica.errors import ValidationException
from triplica.model.numbers import (
    add_numbers,
    format_number,
    normalize_number,
    number_parts,
    parse_number,
    subtract_numbers,
)

NOT_NUMERIC = "The parameter cannot be converted to a numeric value: "
TOO_MANY_DIGITS = "Attempting to store more than 38 significant digits in a Number"
OVERFLOW = "Number overflow. Attempting to store a number with magnitude larger than supported range"
UNDERFLOW = "Number underflow. Attempting to store a number with magnitude smaller than supported range"


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("0", "0"),
        ("-0", "0"),
        ("-0.00", "0"),
        ("0e999999999999999999999", "0"),
        ("1e2", "100"),
        ("1E+2", "100"),
        ("+5", "5"),
        (".5", "0.5"),
        ("-.5", "-0.5"),
        ("5.", "5"),
        ("1.50", "1.5"),
        ("0001200", "1200"),
        ("-12.3400e-3", "-0.01234"),
        ("123.456", "123.456"),
        ("1E-130", "0." + "0" * 129 + "1"),
        ("9.9999999999999999999999999999999999999E+125", "9" * 38 + "0" * 88),
        ("1" + "0" * 50, "1" + "0" * 50),
        ("0.000000000000000000000000000000000000000000012", "0." + "0" * 43 + "12"),
        ("1e0002", "100"),
        ("-" + "9" * 38, "-" + "9" * 38),
    ],
)
def test_normalize_number(text: str, canonical: str) -> None:
    assert normalize_number(text) == canonical
    assert format_number(parse_number(text)) == canonical


@pytest.mark.parametrize(
    "text",
    ["", " 1", "1 ", "1_0", "0x10", "NaN", "nan", "Infinity", "-Infinity", "inf",
     "1e", "e5", ".", "-", "+", "++1", "1e+", "1.2.3", "١٢", "1,5", "1e1.5"],
)
def test_rejects_non_numbers(text: str) -> None:
    with pytest.raises(ValidationException) as error:
        normalize_number(text)
    assert error.value.message == NOT_NUMERIC + text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("9" * 39, TOO_MANY_DIGITS),
        ("1." + "0" * 37 + "1", TOO_MANY_DIGITS),
        ("-" + "1" * 39 + "e-100", TOO_MANY_DIGITS),
        ("1e126", OVERFLOW),
        ("-1e126", OVERFLOW),
        ("10e125", OVERFLOW),
        ("1e99999999999999999999999", OVERFLOW),
        ("1e-131", UNDERFLOW),
        ("0.1e-130", UNDERFLOW),
        ("-1e-99999999999999999999999", UNDERFLOW),
    ],
)
def test_range_and_digit_errors(text: str, message: str) -> None:
    with pytest.raises(ValidationException) as error:
        parse_number(text)
    assert error.value.message == message


def test_zeros_are_not_significant() -> None:
    assert normalize_number("000" + "1" * 38 + "000") == "1" * 38 + "000"
    assert normalize_number("0.000" + "1" * 38) == "0.000" + "1" * 38


def test_parse_is_exact_and_stripped() -> None:
    assert parse_number("1.50").as_tuple() == Decimal("1.5").as_tuple()
    assert parse_number("-0").as_tuple() == Decimal(0).as_tuple()
    assert number_parts(parse_number("-120.5")) == (True, "1205", 2)
    assert number_parts(Decimal(0)) == (False, "", 0)


digits_38 = st.text(alphabet="0123456789", min_size=0, max_size=37)


@st.composite
def dynamo_numbers(draw: st.DrawFn) -> Decimal:
    """Any in-range DynamoDB number with up to 38 significant digits."""
    lead = draw(st.sampled_from("123456789"))
    rest = draw(digits_38).rstrip("0")
    adjusted = draw(st.integers(min_value=-130, max_value=125))
    sign = draw(st.sampled_from(["", "-"]))
    digits = lead + rest
    return Decimal(f"{sign}{digits}E{adjusted - len(digits) + 1}")


@given(dynamo_numbers())
def test_round_trip_38_digits(value: Decimal) -> None:
    text = format_number(value)
    assert "E" not in text and "e" not in text
    assert parse_number(text) == value
    assert normalize_number(text) == text
    assert normalize_number(str(value)) == text  # exponent form accepted too


@given(dynamo_numbers(), dynamo_numbers())
def test_arithmetic_exact_or_error(a: Decimal, b: Decimal) -> None:
    for operation, expected in ((add_numbers, _exact(a, b, 1)), (subtract_numbers, _exact(a, b, -1))):
        try:
            result = operation(a, b)
        except ValidationException as error:
            negative, digits, adjusted = number_parts(expected)
            assert digits and (len(digits) > 38 or not -130 <= adjusted <= 125), error.message
        else:
            assert result == expected


def _exact(a: Decimal, b: Decimal, sign: int) -> Decimal:
    context = Context(prec=1000, Emax=10_000, Emin=-10_000)
    return context.add(a, b) if sign > 0 else context.subtract(a, b)


def test_arithmetic_examples() -> None:
    assert add_numbers("1", "0.5") == Decimal("1.5")
    assert format_number(subtract_numbers("0.3", "0.1")) == "0.2"
    assert format_number(add_numbers("1e-130", "-1e-130")) == "0"
    assert format_number(add_numbers("9" * 38, "0")) == "9" * 38
    assert format_number(add_numbers("1e125", "1e125")) == "2" + "0" * 125
    with pytest.raises(ValidationException, match="^Number overflow"):
        add_numbers("9e125", "1e125")
    # A result that needs more than 38 digits is an overflow to DynamoDB (1e50 + 1).
    with pytest.raises(ValidationException, match="^Number overflow"):
        add_numbers("1e37", "0.1")
    with pytest.raises(ValidationException, match="^Number overflow"):
        add_numbers("1e50", "1")
    with pytest.raises(ValidationException, match="^Number underflow"):
        subtract_numbers("1.0000000000000000000000000000000000001e-130", "1e-130")


from hypothesis import given, strategies as st  # noqa: E402

from triplica.model.numbers import add_number_texts, format_number as _fmt, parse_number as _parse  # noqa: E402


@given(st.integers(-10**19, 10**19), st.integers(-10**19, 10**19), st.booleans())
def test_add_number_texts_fast_path_agrees_with_decimal(a: int, b: int, subtract: bool) -> None:
    expected = _fmt(_parse(str(a)) - _parse(str(b)) if subtract else _parse(str(a)) + _parse(str(b)))
    assert add_number_texts(str(a), str(b), subtract) == expected


def test_add_number_texts_decimal_path() -> None:
    assert add_number_texts("1.5", "2.25") == "3.75"
    assert add_number_texts("1", "0.5", subtract=True) == "0.5"
