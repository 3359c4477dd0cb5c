"""Tokenizer shared by every expression kind.

Turns expression text into a tuple of Tokens ending with an EOF token. It
knows nothing about grammar: keywords are plain NAME tokens and the parser
decides (case-insensitively) what they mean. Positions are kept so syntax
errors can quote the original text around the bad token, as DynamoDB does.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

NAME = "NAME"      # bare identifier: attribute name, keyword or function
ALIAS = "ALIAS"    # #name  (ExpressionAttributeNames key)
VALUE = "VALUE"    # :value (ExpressionAttributeValues key)
NUMBER = "NUMBER"  # list index digits
PUNCT = "PUNCT"    # ( ) [ ] , . = <> < <= > >= + -
EOF = "EOF"

EOF_TEXT = "<EOF>"

_TOKEN_RE = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<ALIAS>\#[A-Za-z0-9_]+)
  | (?P<VALUE>:[A-Za-z0-9_]+)
  | (?P<NAME>[A-Za-z][A-Za-z0-9_]*)   # DynamoDB: a name may not start with _
  | (?P<NUMBER>[0-9]+)
  | (?P<PUNCT><>|<=|>=|[()\[\],.=<>+\-])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    start: int
    end: int


def tokenize(text: str) -> list[Token]:
    """Split text into tokens. An unknown character becomes a one-character
    BAD token so the parser reports it as a syntax error in context."""
    tokens: list[Token] = []
    position = 0
    length = len(text)
    match_at = _TOKEN_RE.match
    while position < length:
        match = match_at(text, position)
        if match is None:
            tokens.append(Token("BAD", text[position], position, position + 1))
            position += 1
            continue
        kind = match.lastgroup
        end = match.end()
        if kind != "space":
            tokens.append(Token(kind, match.group(), position, end))
        position = end
    tokens.append(Token(EOF, EOF_TEXT, length, length))
    return tokens
