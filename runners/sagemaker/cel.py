"""KFP trigger conditions (CEL) -> a small expression tree that SageMaker conditions can express.

KFP compiles ``dsl.If(a >= b)`` to strings such as
``int(inputs.parameter_values['pipelinechannel--n']) >= 3`` and ``dsl.Else``/``dsl.Elif`` to
``!(...)`` and ``&&``. The text is parsed by cel-python (``celpy``), a parser of the whole CEL
language, so string literals follow CEL's own rules (escapes, non-ASCII text, raw strings); this
module only translates its syntax tree. SageMaker can express comparisons, Not, Or and And (the
compiler rewrites And inside Or/Not with De Morgan), so anything else (arithmetic, ``in``, function
calls other than the type casts KFP writes, ternaries) is refused with the task named.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from kubesage.errors import UnsupportedFeatureError
from kubesage.ir.parameters import as_cel_value

# int()/double()/string() appear around references when KFP knows the declared type; the values
# SageMaker compares are already typed (parameters, JSON numbers), so casts are dropped.
_CASTS = frozenset({"int", "double", "string", "bool", "uint"})

COMPARISONS = {
    "relation_eq": "==",
    "relation_ne": "!=",
    "relation_lt": "<",
    "relation_le": "<=",
    "relation_gt": ">",
    "relation_ge": ">=",
}
SUBSET = "comparisons ==, !=, <, <=, >, >= joined by &&, ||, ! on parameters and constants"


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


class _OutsideSubsetError(ValueError):
    """The expression is valid CEL but outside what SageMaker conditions express."""


@cache
def _parser() -> Any:
    # celpy builds its LALR tables once per process (about 0.2 s); the import itself about 0.4 s.
    from celpy.celparser import CELParser

    return CELParser()


def _flatten(tree: Any, rule: str) -> list[Any]:
    """Left-recursive ``a || b || c`` (or &&) as the list of its operands."""
    if tree.data != rule:
        return [tree]
    if len(tree.children) == 1:
        return [tree.children[0]]
    left, right = tree.children
    return [*_flatten(left, rule), right]


def _single(tree: Any) -> Any:
    if len(tree.children) != 1:
        what = {"addition": "arithmetic (+, -)", "multiplication": "arithmetic (*, /, %)"}.get(tree.data, tree.data)
        raise _OutsideSubsetError(f"{what} is not supported")
    return tree.children[0]


def _literal(token: Any) -> Literal:
    from celpy.evaluation import celstr

    kind, text = token.type, token.value
    if kind in ("STRING_LIT", "MLSTRING_LIT"):
        return Literal(str(celstr(token)))
    if kind == "INT_LIT":
        return Literal(int(text, 16) if "0x" in text else int(text))
    if kind == "FLOAT_LIT":
        return Literal(float(text))
    if kind == "BOOL_LIT":
        return Literal(text == "true")
    raise _OutsideSubsetError(f"unsupported literal {text}")


class _Translator:
    def expr(self, tree: Any) -> Expr:
        if tree.data == "expr":
            if len(tree.children) != 1:
                raise _OutsideSubsetError("the ternary operator ?: is not supported")
            return self.expr(tree.children[0])
        if tree.data == "conditionalor":
            operands = [self.expr(node) for node in _flatten(tree, "conditionalor")]
            return operands[0] if len(operands) == 1 else Or(tuple(operands))
        if tree.data == "conditionaland":
            operands = [self.expr(node) for node in _flatten(tree, "conditionaland")]
            return operands[0] if len(operands) == 1 else And(tuple(operands))
        if tree.data == "relation":
            return self.relation(tree)
        return self.value(tree)

    def relation(self, tree: Any) -> Expr:
        if len(tree.children) == 1:
            return self.value(tree.children[0])
        op_node, right = tree.children
        op = COMPARISONS.get(op_node.data)
        if op is None:
            raise _OutsideSubsetError(f"operator {op_node.data.removeprefix('relation_')!r} is not supported")
        left = self.operand(_single(op_node))
        return Compare(op, left, self.operand(right))

    def operand(self, tree: Any) -> Ref | Literal:
        node = self.value(tree)
        if not isinstance(node, Ref | Literal):
            raise _OutsideSubsetError("comparisons must compare parameters or constants")
        return node

    def value(self, tree: Any) -> Expr:
        """addition/multiplication/unary/member/primary chains down to a leaf."""
        data = tree.data
        if data in ("addition", "multiplication", "member", "primary"):
            return self.value(_single(tree))
        if data == "relation":
            return self.relation(tree)
        if data == "unary":
            if len(tree.children) == 1:
                return self.value(tree.children[0])
            op, operand = tree.children
            if op.data == "unary_not":
                return Not(self.expr(operand))
            raise _OutsideSubsetError("unary minus on an expression is not supported")
        if data == "paren_expr":
            return self.expr(tree.children[0])
        if data == "literal":
            return _literal(tree.children[0])
        if data == "ident_arg":
            name, *args = tree.children
            if name.value not in _CASTS or len(args) != 1 or len(args[0].children) != 1:
                raise _OutsideSubsetError(f"function {name.value}() is not supported")
            return self.value(args[0].children[0])
        if data == "member_index":
            return self.reference(tree)
        if data in ("expr", "conditionalor", "conditionaland"):
            return self.expr(tree)
        raise _OutsideSubsetError(f"{data.replace('_', ' ')} is not supported")

    def reference(self, tree: Any) -> Ref:
        """``inputs.parameter_values['name']``, the only reference KFP writes."""
        target, index = tree.children
        dotted = _single(target) if target.data == "member" else target
        base = dotted.children[0] if dotted.data == "member_dot" else None
        if (
            base is None
            or dotted.children[1].value != "parameter_values"
            or base.pretty().split() != ["member", "primary", "ident", "inputs"]
        ):
            raise _OutsideSubsetError("only inputs.parameter_values[...] can be referenced")
        key = self.expr(index)
        if not isinstance(key, Literal) or not isinstance(key.value, str):
            raise _OutsideSubsetError("a parameter reference needs a string key")
        return Ref(key.value)


def parse_condition(text: str, *, task: str) -> Expr:
    """Parse a KFP trigger condition; raise UnsupportedFeatureError naming ``task`` otherwise."""
    from celpy.celparser import CELParseError

    try:
        tree = _parser().parse(text)
    except CELParseError as exc:
        where = f" at column {exc.column}" if getattr(exc, "column", None) else ""
        raise UnsupportedFeatureError(
            f"task '{task}': condition {text!r} is not valid CEL (syntax error{where}); recompile it with kfp.compiler"
        ) from exc
    try:
        return _Translator().expr(tree)
    except (_OutsideSubsetError, ValueError) as exc:
        raise UnsupportedFeatureError(
            f"task '{task}': condition {text!r} is outside the supported subset ({SUBSET}): {exc}"
        ) from exc


def check_syntax(text: str, *, task: str) -> None:
    """Refuse a condition that is not valid CEL; a fan-out job evaluates the rest with cel-python itself."""
    from celpy.celparser import CELParseError

    try:
        _parser().parse(text)
    except CELParseError as exc:
        raise UnsupportedFeatureError(
            f"task '{task}': condition {text!r} is not valid CEL; recompile it with kfp.compiler"
        ) from exc


@cache
def _program(text: str) -> Any:
    import celpy

    environment = celpy.Environment()
    return environment.program(environment.compile(text))


def evaluate(text: str, values: dict[str, Any]) -> bool:
    """A KFP trigger condition's truth with `values` as `inputs.parameter_values`, by cel-python.

    Raises ValueError when it cannot be evaluated (a missing input, comparing a number with a
    string) or is not a boolean, as KFP's driver fails the task then."""
    import celpy
    from celpy.celtypes import BoolType

    activation = {"inputs": celpy.json_to_cel({"parameter_values": as_cel_value(values)})}
    try:
        result = _program(text).evaluate(activation)
    except Exception as exc:  # celpy raises CELEvalError, TypeError, KeyError on bad operands
        reason = exc.args[0] if exc.args else exc
        raise ValueError(f"condition {text!r} could not be evaluated with {values}: {reason}") from exc
    if not isinstance(result, bool | BoolType):
        raise ValueError(f"condition {text!r} gave {result!r} with {values}, not true or false")
    return bool(result)
