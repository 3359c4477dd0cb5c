"""The parser: one grammar for every DynamoDB expression kind.

Entry points return cached trees (see tree.py): a tree holds only the
expression's own text, so caching by (grammar, kind, text) is safe. Syntax
errors are raised at the first bad token; static semantic errors that need
the whole tree (reserved words, unknown functions, redundant parentheses)
are raised after a successful parse, in order of appearance.

No input may exhaust the Python stack: conditions are parsed by operator
precedence over explicit stacks (parentheses and NOT cost no recursion) and
nested function calls keep their own stack, so the depth of the text is
bounded only by its 4 KB. DynamoDB's limits are enforced while parsing: the
301st operator (AND OR NOT IN BETWEEN and comparators; in an UpdateExpression
also + - and function calls) is refused at once, before the rest of the text
is read; a pair of parentheses directly around another pair is redundant.

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
from triplica.model.limits import (EXPRESSION_BYTES_MAX, EXPRESSION_OPERATORS_MAX,
                                   LIST_INDEX_MAX, NESTING_DEPTH_MAX)

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
        self.operators = 0
        # DynamoDB's limit is on "operators or functions" in an UpdateExpression;
        # in conditions only operators count (a nested f(f(...)) is not refused
        # for its count).
        self.counts_functions = kind == "UpdateExpression"

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

    # -- limits --------------------------------------------------------
    def count_operator(self) -> None:
        """One more operator; DynamoDB stops at the first one past the limit,
        before looking at the rest of the text (even a syntax error there)."""
        self.operators += 1
        if self.operators > EXPRESSION_OPERATORS_MAX:
            raise messages.too_many_operators(self.kind, self.operators)

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
                index = int(token.text)
                if index > LIST_INDEX_MAX:
                    raise messages.invalid(
                        self.kind,
                        f"List index is not within the allowable range; index: {token.text}")
                elements.append(index)
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

    def at_function(self) -> bool:
        token = self.tokens[self.position]
        if token.kind != NAME:
            return False
        following = self.tokens[self.position + 1]   # EOF ends every token list
        return following.kind == PUNCT and following.text == "("

    def operand(self):
        """path | :value | NAME "(" operand ("," operand)* ")".

        Nested calls are kept on an explicit stack, not the Python stack: a
        4 KB expression can nest f(f(...)) two thousand deep.
        """
        calls: list[tuple[str, list]] = []   # open calls: name, arguments so far
        while True:
            while self.at_function():
                name = self.advance().text
                if name not in FUNCTIONS:
                    self.semantic_errors.append(messages.invalid_function(self.kind, name))
                if self.counts_functions:
                    self.count_operator()
                self.advance()   # "("
                calls.append((name, []))
            token = self.peek()
            if token.kind == VALUE:
                self.advance()
                node = ValueNode(token.text)
            else:
                node = self.path()
            while calls:
                calls[-1][1].append(node)
                if self.at_punct(","):
                    self.advance()
                    break   # the next argument of the innermost open call
                self.expect_punct(")")
                name, args = calls.pop()
                node = FunctionNode(name, tuple(args))
            else:
                return node

    # -- conditions ----------------------------------------------------
    def condition(self):
        """or := and (OR and)*; and := not (AND not)*; not := NOT not | primary;
        primary := "(" or ")" | comparison.

        Operator precedence parsing over explicit stacks (no recursion per
        parenthesis or NOT), so depth is bounded only by the 4 KB text.
        `pending` holds NOT, AND, OR and open-parenthesis markers (the token
        index of the "("); `nodes` the finished operands.
        """
        pending: list = []
        nodes: list = []
        open_groups = 0
        last_group: tuple[int, int] | None = None   # (open index, close index) of the last ")"
        while True:
            while True:   # prefixes of an operand
                if self.at_punct("("):
                    pending.append(self.position)
                    open_groups += 1
                    self.advance()
                elif self.at_keyword("NOT"):
                    self.count_operator()
                    self.advance()
                    pending.append(_NOT)
                else:
                    break
            nodes.append(self.primary())
            _apply_negations(pending, nodes)
            while open_groups and self.at_punct(")"):   # groups closing after the operand
                close = self.position
                self.advance()
                _reduce(pending, nodes, _LOWEST)
                opened = pending.pop()
                open_groups -= 1
                if last_group == (opened + 1, close - 1):
                    self.semantic_errors.append(messages.redundant_parentheses(self.kind))
                last_group = (opened, close)
                _apply_negations(pending, nodes)
            if self.at_keyword("AND"):
                operator = _AND
            elif self.at_keyword("OR"):
                operator = _OR
            else:
                _reduce(pending, nodes, _LOWEST)
                if pending:   # a "(" never closed
                    raise self.error()
                assert len(nodes) == 1, nodes
                return nodes[0]
            self.count_operator()
            self.advance()
            _reduce(pending, nodes, _PRECEDENCE[operator])
            pending.append(operator)

    def primary(self):
        left = self.operand()
        token = self.peek()
        if token.kind == PUNCT and token.text in COMPARATORS:
            self.count_operator()
            self.advance()
            return CompareNode(token.text, left, self.operand())
        if self.at_keyword("BETWEEN"):
            self.count_operator()
            self.advance()
            low = self.operand()
            if not self.at_keyword("AND"):
                raise self.error()
            self.advance()
            return BetweenNode(left, low, self.operand())
        if self.at_keyword("IN"):
            self.count_operator()
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
                self.count_operator()
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


# Operator stack entries of `condition`; an int entry is an open parenthesis.
_NOT, _AND, _OR = "NOT", "AND", "OR"
_PRECEDENCE = {_OR: 1, _AND: 2}
_LOWEST = 0   # reduce every pending AND and OR (at ")" and at the end)


def _apply_negations(pending: list, nodes: list) -> None:
    """NOT binds tighter than AND and OR: apply the ones before a finished operand."""
    while pending and pending[-1] is _NOT:
        pending.pop()
        nodes.append(NotNode(nodes.pop()))


def _reduce(pending: list, nodes: list, floor: int) -> None:
    """Apply the pending AND/OR of precedence >= floor (left associative),
    stopping at an open parenthesis. NOTs never wait here: they are applied as
    soon as their operand is finished."""
    while pending and (pending[-1] is _AND or pending[-1] is _OR) \
            and _PRECEDENCE[pending[-1]] >= floor:
        operator = pending.pop()
        right = nodes.pop()
        left = nodes.pop()
        nodes.append(AndNode(left, right) if operator is _AND else OrNode(left, right))


def _check_text(text: str, kind: str) -> None:
    if not isinstance(text, str) or not text.strip():
        raise messages.empty_expression(kind)
    if len(text) * 4 > EXPRESSION_BYTES_MAX and len(text.encode("utf-8")) > EXPRESSION_BYTES_MAX:
        raise messages.too_large(kind, len(text.encode("utf-8")))


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
