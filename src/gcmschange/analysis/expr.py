"""Success and failure conditions: a small expression language, parsed, never `eval`-ed.

A condition reads one number, `result` (the query's value), as Argo Rollouts' conditions do:
`result < 0.05`, `result >= 0.95 and not isNaN(result)`, `(result - 1) * 100 <= 5`.
Grammar: or / and / not (also `||`, `&&`, `!`), one comparison (< <= > >= == !=), + - * /,
unary minus, numbers, `true`, `false`, `isNaN(...)`, `isInf(...)`, parentheses. Types are
checked when the condition is compiled, so a condition that could not give true or false is
refused at validation, never in the middle of a change.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import Enum

from gcmschange.errors import InvalidInputError

MAX_LENGTH = 500  # a condition is one line; anything longer is not one


class Kind(Enum):
    NUMBER = "number"
    BOOL = "boolean"


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Bool:
    value: bool


@dataclass(frozen=True)
class Result:
    pass


@dataclass(frozen=True)
class Unary:
    op: str  # "-" or "not"
    operand: Node


@dataclass(frozen=True)
class Binary:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Call:
    name: str  # isNaN, isInf
    arg: Node


Node = Num | Bool | Result | Unary | Binary | Call

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op><=|>=|==|!=|&&|\|\||[<>()+\-*/!]))"
)
_COMPARE = ("<", "<=", ">", ">=", "==", "!=")
_FUNCS = {"isNaN": math.isnan, "isInf": math.isinf}
_WORDS = {"&&": "and", "||": "or", "!": "not"}


def _tokens(text: str, where: str) -> list[str]:
    out: list[str] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise InvalidInputError(f"{where}: unexpected {text[pos:].strip()[:20]!r}")
        token = match.group("num") or match.group("name") or match.group("op") or ""
        out.append(_WORDS.get(token, token))
        pos = match.end()
    return out


class _Parser:
    def __init__(self, tokens: list[str], where: str) -> None:
        self.tokens = tokens
        self.pos = 0
        self.where = where

    def peek(self) -> str:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ""

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if not token or (expected is not None and token != expected):
            want = f"{expected!r}" if expected else "more"
            raise InvalidInputError(f"{self.where}: expected {want}, found {token or 'the end'!r}")
        self.pos += 1
        return token

    def or_(self) -> Node:
        node = self.and_()
        while self.peek() == "or":
            self.take()
            node = Binary("or", node, self.and_())
        return node

    def and_(self) -> Node:
        node = self.not_()
        while self.peek() == "and":
            self.take()
            node = Binary("and", node, self.not_())
        return node

    def not_(self) -> Node:
        if self.peek() == "not":
            self.take()
            return Unary("not", self.not_())
        return self.compare()

    def compare(self) -> Node:
        node = self.sum()
        if self.peek() in _COMPARE:
            op = self.take()
            node = Binary(op, node, self.sum())
            if self.peek() in _COMPARE:
                raise InvalidInputError(f"{self.where}: chained comparisons need 'and'")
        return node

    def sum(self) -> Node:
        node = self.product()
        while self.peek() in ("+", "-"):
            op = self.take()
            node = Binary(op, node, self.product())
        return node

    def product(self) -> Node:
        node = self.unary()
        while self.peek() in ("*", "/"):
            op = self.take()
            node = Binary(op, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.peek() == "-":
            self.take()
            return Unary("-", self.unary())
        return self.atom()

    def atom(self) -> Node:
        word = self.take()
        if word == "(":
            node = self.or_()
            self.take(")")
            return node
        if word[0].isdigit() or word[0] == ".":
            return Num(float(word))
        if word == "result":
            return Result()
        if word in ("true", "false"):
            return Bool(word == "true")
        if word in _FUNCS:
            self.take("(")
            arg = self.or_()
            self.take(")")
            return Call(word, arg)
        raise InvalidInputError(
            f"{self.where}: unknown name {word!r} (known: result, true, false, isNaN, isInf)"
        )


# operator -> (what its operands must be, what it gives)
_SIGNATURES: dict[str, tuple[Kind, Kind]] = {
    **dict.fromkeys(("and", "or", "not"), (Kind.BOOL, Kind.BOOL)),
    **dict.fromkeys(_COMPARE, (Kind.NUMBER, Kind.BOOL)),
    **dict.fromkeys(("+", "-", "*", "/"), (Kind.NUMBER, Kind.NUMBER)),
    **dict.fromkeys(_FUNCS, (Kind.NUMBER, Kind.BOOL)),
}


def _kind(node: Node, where: str) -> Kind:
    """The type of `node`, or a located error where an operand has the wrong one."""
    if isinstance(node, Num | Result):
        return Kind.NUMBER
    if isinstance(node, Bool):
        return Kind.BOOL
    operands: tuple[Node, ...]
    if isinstance(node, Call):
        op, operands = node.name, (node.arg,)
    elif isinstance(node, Unary):
        op, operands = node.op, (node.operand,)
    else:
        op, operands = node.op, (node.left, node.right)
    want, gives = _SIGNATURES[op]
    for operand in operands:
        _need(operand, want, where)
    return gives


def _need(node: Node, kind: Kind, where: str) -> None:
    found = _kind(node, where)
    if found is not kind:
        raise InvalidInputError(f"{where}: expected a {kind.value}, found a {found.value}")


@dataclass(frozen=True)
class Condition:
    """A compiled condition: `text` as written, `tree` as parsed and type-checked."""

    text: str
    tree: Node

    def holds(self, result: float) -> bool:
        return bool(_eval(self.tree, result))


def compile_condition(text: str, where: str) -> Condition:
    """Parse and type-check `text`; `InvalidInputError` naming `where` and why otherwise."""
    if len(text) > MAX_LENGTH:
        raise InvalidInputError(f"{where}: longer than {MAX_LENGTH} characters")
    parser = _Parser(_tokens(text, where), where)
    if not parser.tokens:
        raise InvalidInputError(f"{where}: empty condition")
    tree = parser.or_()
    if parser.peek():
        raise InvalidInputError(f"{where}: unexpected {parser.peek()!r}")
    if _kind(tree, where) is not Kind.BOOL:
        raise InvalidInputError(f"{where}: {text!r} gives a number, not true or false")
    return Condition(text, tree)


def _eval(node: Node, result: float) -> float | bool:
    if isinstance(node, Num | Bool):
        return node.value
    if isinstance(node, Result):
        return result
    if isinstance(node, Call):
        return _FUNCS[node.name](float(_eval(node.arg, result)))
    if isinstance(node, Unary):
        value = _eval(node.operand, result)
        return (not value) if node.op == "not" else -float(value)
    return _binary(node, result)


def _binary(node: Binary, result: float) -> float | bool:
    if node.op == "and":
        return bool(_eval(node.left, result)) and bool(_eval(node.right, result))
    if node.op == "or":
        return bool(_eval(node.left, result)) or bool(_eval(node.right, result))
    return _arith(node.op, float(_eval(node.left, result)), float(_eval(node.right, result)))


def _arith(op: str, a: float, b: float) -> float | bool:
    if op == "/":
        # Division by zero gives what PromQL gives (NaN or +-Inf), not an exception.
        return a / b if b else (math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a))
    table = {
        "+": a + b,
        "-": a - b,
        "*": a * b,
        "<": a < b,
        "<=": a <= b,
        ">": a > b,
        ">=": a >= b,
        "==": a == b,
        "!=": a != b,
    }
    return table[op]
