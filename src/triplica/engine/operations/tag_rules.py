"""Which tag keys and values DynamoDB accepts ("Tagging for DynamoDB",
"Tagging restrictions"): letters, numbers and spaces in any language, and
`_ . : / = + - @`. Anything else (`!`, `%`, `"`, control characters) is a
constraint violation naming AWS's tag pattern.
"""
from __future__ import annotations

import unicodedata

TAG_PATTERN = r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*"
_ALLOWED_PUNCTUATION = frozenset("_.:/=+-@")
_ALLOWED_CATEGORIES = ("L", "Z", "N")   # letters, separators, numbers


def tag_text_allowed(text: str) -> bool:
    """True when every character of a tag key or value matches TAG_PATTERN."""
    if text.isalnum():   # the common case, no per-character lookup
        return True
    return all(char in _ALLOWED_PUNCTUATION
               or unicodedata.category(char)[0] in _ALLOWED_CATEGORIES for char in text)
