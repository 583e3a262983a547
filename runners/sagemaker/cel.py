"""A parser for the small subset of CEL that KFP writes into ``triggerPolicy.condition``.

KFP compiles ``dsl.If(a >= b)`` to strings such as
``int(inputs.parameter_values['pipelinechannel--n']) >= 3`` and ``dsl.Else``/``dsl.Elif`` to
``!(...)`` and ``&&``. SageMaker can only express comparisons, Not, Or and a top-level And, so we
accept exactly that grammar and reject the rest with a message instead of guessing:

    expr    := or
    or      := and ("||" and)*
    and     := unary ("&&" unary)*
    unary   := "!" unary | compare
    compare := operand (("==" | "!=" | "<" | "<=" | ">" | ">=") operand)?
    operand := "(" or ")" | cast "(" operand ")" | ref | number | string | true | false
    ref     := "inputs.parameter_values[" string "]"
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kubesage.errors import UnsupportedFeatureError

# int()/double()/string() appear around references when KFP knows the declared type; the values
# SageMaker compares are already typed (parameters, JSON numbers), so casts are dropped.
_CASTS = frozenset({"int", "double", "string", "bool", "float"})

_TOKEN_RE = re.compile(
    r"""\s*(?:
        (?P<ref>inputs\.parameter_values\[\s*(?P<refq>'[^']*'|"[^"]*")\s*\])
      | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
      | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<op>==|!=|<=|>=|&&|\|\||<|>|!|\(|\))
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)

COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")


@dataclass(frozen=True)
class Ref:
    """A reference to an input parameter of the condition's sub-DAG."""

    name: str


@dataclass(frozen=True)
class Literal:
    value: str | int | float | bool


@dataclass(frozen=True)
class Compare:
    op: str
    left: Ref | Literal
    right: Ref | Literal


@dataclass(frozen=True)
class Not:
    operand: Expr


@dataclass(frozen=True)
class And:
    operands: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Expr, ...]


Expr = Compare | Not | And | Or | Ref | Literal


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None or match.end() == pos:
            raise ValueError(f"unexpected text {text[pos : pos + 20]!r}")
        kind = match.lastgroup if match.lastgroup != "refq" else "ref"
        if match.group("ref") is not None:
            tokens.append(("ref", match.group("refq")[1:-1]))
        else:
            assert kind is not None
            tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise ValueError("unexpected end of expression")
        if value is not None and token[1] != value:
            raise ValueError(f"expected {value!r}, found {token[1]!r}")
        self.pos += 1
        return token

    def parse(self) -> Expr:
        expr = self.parse_or()
        if self.peek() is not None:
            raise ValueError(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return expr

    def parse_or(self) -> Expr:
        operands = [self.parse_and()]
        while self.peek() == ("op", "||"):
            self.take()
            operands.append(self.parse_and())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def parse_and(self) -> Expr:
        operands = [self.parse_unary()]
        while self.peek() == ("op", "&&"):
            self.take()
            operands.append(self.parse_unary())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def parse_unary(self) -> Expr:
        if self.peek() == ("op", "!"):
            self.take()
            return Not(self.parse_unary())
        return self.parse_compare()

    def parse_compare(self) -> Expr:
        left = self.parse_operand()
        token = self.peek()
        if token is not None and token[0] == "op" and token[1] in COMPARISONS:
            self.take()
            right = self.parse_operand()
            if not isinstance(left, Ref | Literal) or not isinstance(right, Ref | Literal):
                raise ValueError("comparisons must compare parameters or constants")
            return Compare(token[1], left, right)
        return left

    def parse_operand(self) -> Expr:
        kind, value = self.take()
        if (kind, value) == ("op", "("):
            inner = self.parse_or()
            self.take(")")
            return inner
        if kind == "ident" and value in _CASTS and self.peek() == ("op", "("):
            self.take("(")
            inner = self.parse_operand()
            self.take(")")
            return inner
        if kind == "ident" and value in ("true", "false"):
            return Literal(value == "true")
        if kind == "ref":
            return Ref(value)
        if kind == "number":
            return Literal(float(value) if re.search(r"[.eE]", value) else int(value))
        if kind == "string":
            return Literal(value[1:-1].encode().decode("unicode_escape"))
        raise ValueError(f"unsupported token {value!r}")


def parse_condition(text: str, *, task: str) -> Expr:
    """Parse a KFP trigger condition; raise UnsupportedFeatureError naming ``task`` otherwise."""
    try:
        return _Parser(_tokenize(text)).parse()
    except ValueError as exc:
        raise UnsupportedFeatureError(
            f"task '{task}': condition {text!r} is outside the supported subset "
            f"(comparisons ==, !=, <, <=, >, >= joined by &&, ||, ! on parameters and constants): {exc}"
        ) from exc
