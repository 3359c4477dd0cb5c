"""Recursive-descent parser: one grammar for every DynamoDB expression kind.

Entry points return cached trees (see tree.py): a tree holds only the
expression's own text, so caching by (grammar, kind, text) is safe. Syntax
errors are raised at the first bad token; static semantic errors that need
the whole tree (reserved words, unknown functions) are raised after a
successful parse, in order of appearance.

Grammar (keywords case-insensitive, function names case-sensitive):
    condition  := or
    or         := and (OR and)*
    and        := not (AND not)*
    not        := NOT not | primary
    primary    := "(" condition ")"
                | operand comparator operand
                | operand BETWEEN operand AND operand
                | operand IN "(" operand ("," operand)* ")"
                | function
    operand    := path | :value | function
    function   := NAME "(" operand ("," operand)* ")"
    path       := (NAME | #alias) ("." (NAME | #alias) | "[" digits "]")*
    update     := (SET set ("," set)* | REMOVE path ("," path)*
                  | ADD path :value ("," path :value)* | DELETE path :value (...)*)+
    set        := path "=" operand (("+" | "-") operand)?
    projection := path ("," path)*
"""
from __future__ import annotations

from triplica.errors import ValidationException
from triplica.model.limits import EXPRESSION_BYTES_MAX, NESTING_DEPTH_MAX

from .. import messages
from ..reserved_words import is_reserved
from ..tokens import ALIAS, EOF, NAME, NUMBER, PUNCT, VALUE, Token, tokenize
from ..tree import (
    AndNode, ArithmeticNode, BetweenNode, CompareNode, FunctionNode, InNode, NotNode,
    OrNode, PathNode, ProjectionTree, UpdateAction, UpdateTree, ValueNode,
)

FUNCTIONS = frozenset({
    "attribute_exists", "attribute_not_exists", "attribute_type", "begins_with",
    "contains", "size", "if_not_exists", "list_append",
})
COMPARATORS = frozenset({"=", "<>", "<", "<=", ">", ">="})
CONDITION_KEYWORDS = frozenset({"AND", "OR", "NOT", "BETWEEN", "IN"})
CLAUSES = ("SET", "REMOVE", "ADD", "DELETE")

_CACHE_ENTRIES_MAX = 4096
_cache: dict[tuple[str, str, str], object] = {}


class _Parser:
    def __init__(self, text: str, kind: str) -> None:
        self.text = text
        self.kind = kind
        self.tokens: list[Token] = tokenize(text)
        self.position = 0
        self.semantic_errors: list[ValidationException] = []

    # -- token helpers -------------------------------------------------
    def peek(self) -> Token:
        return self.tokens[self.position]

    def advance(self) -> Token:
        token = self.tokens[self.position]
        if token.kind != EOF:
            self.position += 1
        return token

    def at_punct(self, text: str) -> bool:
        token = self.tokens[self.position]
        return token.kind == PUNCT and token.text == text

    def at_keyword(self, word: str) -> bool:
        token = self.tokens[self.position]
        return token.kind == NAME and token.text.upper() == word

    def expect_punct(self, text: str) -> Token:
        if not self.at_punct(text):
            raise self.error()
        return self.advance()

    def error(self) -> ValidationException:
        """Syntax error at the current token; `near` quotes the original text
        from the previous token through the next one."""
        index = self.position
        token = self.tokens[index]
        start = self.tokens[index - 1].start if index > 0 else token.start
        end = token.end
        if token.kind != EOF and self.tokens[index + 1].kind != EOF:
            end = self.tokens[index + 1].end
        return messages.syntax_error(self.kind, token.text, self.text[start:end])

    def finish(self) -> None:
        if self.peek().kind != EOF:
            raise self.error()
        if self.semantic_errors:
            raise self.semantic_errors[0]

    # -- paths and operands --------------------------------------------
    def path(self) -> PathNode:
        elements: list[str | int] = [self.path_name()]
        while True:
            if self.at_punct("."):
                self.advance()
                elements.append(self.path_name())
            elif self.at_punct("["):
                self.advance()
                token = self.peek()
                if token.kind != NUMBER:
                    raise self.error()
                self.advance()
                self.expect_punct("]")
                elements.append(int(token.text))
            else:
                break
        if len(elements) > NESTING_DEPTH_MAX:
            self.semantic_errors.append(messages.invalid(
                self.kind,
                "The document path has too many nesting levels; "
                f"nesting levels: {len(elements)}",
            ))
        return PathNode(tuple(elements))

    def path_name(self) -> str:
        token = self.peek()
        if token.kind == ALIAS:
            self.advance()
            return token.text
        if token.kind != NAME or token.text.upper() in CONDITION_KEYWORDS:
            raise self.error()
        self.advance()
        if is_reserved(token.text):
            self.semantic_errors.append(messages.reserved_keyword(self.kind, token.text))
        return token.text

    def operand(self):
        token = self.peek()
        if token.kind == VALUE:
            self.advance()
            return ValueNode(token.text)
        if token.kind == NAME and self.tokens[self.position + 1].text == "(" \
                and self.tokens[self.position + 1].kind == PUNCT:
            return self.function()
        return self.path()

    def function(self) -> FunctionNode:
        name = self.advance().text
        if name not in FUNCTIONS:
            self.semantic_errors.append(messages.invalid_function(self.kind, name))
        self.expect_punct("(")
        args = [self.operand()]
        while self.at_punct(","):
            self.advance()
            args.append(self.operand())
        self.expect_punct(")")
        return FunctionNode(name, tuple(args))

    # -- conditions ----------------------------------------------------
    def condition(self):
        node = self.conjunction()
        while self.at_keyword("OR"):
            self.advance()
            node = OrNode(node, self.conjunction())
        return node

    def conjunction(self):
        node = self.negation()
        while self.at_keyword("AND"):
            self.advance()
            node = AndNode(node, self.negation())
        return node

    def negation(self):
        if self.at_keyword("NOT"):
            self.advance()
            return NotNode(self.negation())
        return self.primary()

    def primary(self):
        if self.at_punct("("):
            self.advance()
            node = self.condition()
            self.expect_punct(")")
            return node
        left = self.operand()
        token = self.peek()
        if token.kind == PUNCT and token.text in COMPARATORS:
            self.advance()
            return CompareNode(token.text, left, self.operand())
        if self.at_keyword("BETWEEN"):
            self.advance()
            low = self.operand()
            if not self.at_keyword("AND"):
                raise self.error()
            self.advance()
            return BetweenNode(left, low, self.operand())
        if self.at_keyword("IN"):
            self.advance()
            self.expect_punct("(")
            choices = [self.operand()]
            while self.at_punct(","):
                self.advance()
                choices.append(self.operand())
            self.expect_punct(")")
            return InNode(left, tuple(choices))
        if isinstance(left, FunctionNode):
            return left
        raise self.error()

    # -- update --------------------------------------------------------
    def update(self) -> UpdateTree:
        actions: list[UpdateAction] = []
        seen: set[str] = set()
        while True:
            token = self.peek()
            clause = token.text.upper() if token.kind == NAME else ""
            if clause not in CLAUSES:
                raise self.error()
            if clause in seen:
                raise messages.invalid(
                    self.kind,
                    f'The "{clause}" section can only be used once in an update expression;',
                )
            seen.add(clause)
            self.advance()
            actions.append(self.update_action(clause))
            while self.at_punct(","):
                self.advance()
                actions.append(self.update_action(clause))
            if self.peek().kind == EOF:
                return UpdateTree(tuple(actions))

    def update_action(self, clause: str) -> UpdateAction:
        path = self.path()
        if clause == "REMOVE":
            return UpdateAction(clause, path, None)
        if clause == "SET":
            self.expect_punct("=")
            value = self.operand()
            token = self.peek()
            if token.kind == PUNCT and token.text in ("+", "-"):
                self.advance()
                value = ArithmeticNode(token.text, value, self.operand())
            return UpdateAction(clause, path, value)
        token = self.peek()
        if token.kind != VALUE:
            raise self.error()
        self.advance()
        return UpdateAction(clause, path, ValueNode(token.text))

    def projection(self) -> ProjectionTree:
        paths = [self.path()]
        while self.at_punct(","):
            self.advance()
            paths.append(self.path())
        return ProjectionTree(tuple(paths))


def _check_text(text: str, kind: str) -> None:
    if not isinstance(text, str) or not text.strip():
        raise messages.empty_expression(kind)
    if len(text) * 4 > EXPRESSION_BYTES_MAX and len(text.encode("utf-8")) > EXPRESSION_BYTES_MAX:
        raise messages.too_large(kind)


def _parse(grammar: str, text: str, kind: str):
    key = (grammar, kind, text)
    cached = _cache.get(key)
    if cached is None:
        _check_text(text, kind)
        parser = _Parser(text, kind)
        try:
            cached = getattr(parser, grammar)()
            parser.finish()
        except ValidationException as error:
            cached = error
        if len(_cache) >= _CACHE_ENTRIES_MAX:
            _cache.clear()
        _cache[key] = cached
    if isinstance(cached, ValidationException):
        raise ValidationException(cached.message)
    return cached


def parse_condition_tree(text: str, kind: str = "ConditionExpression"):
    return _parse("condition", text, kind)


def parse_update_tree(text: str, kind: str = "UpdateExpression") -> UpdateTree:
    return _parse("update", text, kind)


def parse_projection_tree(text: str, kind: str = "ProjectionExpression") -> ProjectionTree:
    return _parse("projection", text, kind)
