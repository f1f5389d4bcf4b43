"""The expression grammar of scripts: a hand-written tokenizer and Pratt parser (pure).

    expr    := expr 'or' expr | expr 'and' expr | 'not' expr
             | sum (('<' | '<=' | '>' | '>=' | '==' | '!=') sum)?
    sum     := sum ('+' | '-') term | term          term := term ('*' | '/' | '%') unary | unary
    unary   := '-' unary | power                    power := atom ('**' unary)?
    atom    := number | duration | string | 'true' | 'false' | name | 't'
             | function '(' expr (',' expr)* ')' | '(' expr ')'

From loosest to tightest: or, and, not, comparisons (one per level: write
`a < b and b < c`), + -, * / %, unary -, ** (right to left, so -2**2 is -4).
Every error is an ExpressionError at the exact character: `position` is
where the text starts in its file, and offsets inside it are added to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from hub.script.compiler import Compiled, compile_node
from hub.script.errors import ExpressionError, ScriptProblem
from hub.script.functions import FUNCTIONS, Call, Signature
from hub.script.lexer import KEYWORDS, LexError, Token, tokenize
from hub.script.model import Environment, Position, Value
from hub.script.nodes import Arithmetic, Compare, Literal_, Logical, Name, Node, Type, Unary

MAX_CHARS = 4000
MAX_HEIGHT = 64  # nesting of the tree: deeper is no hand-written expression, and would recurse too far
TIME = "t"
_COMPARE = ("<", "<=", ">", ">=", "==", "!=")
_BINARY = {"or": 10, "and": 20, **{op: 40 for op in _COMPARE}, "+": 50, "-": 50, "*": 60, "/": 60, "%": 60,
           "**": 80}
_NOT_BP, _NEG_BP = 30, 70


Locate = Callable[[int], Position]  # offset in an expression's text -> where that character is written


def position_at(base: Position, text: str, offset: int) -> Position:
    """The file position of `text[offset]` when `text` starts at `base` and is written as it reads."""
    newlines = text.count("\n", 0, offset)
    if not newlines:
        return Position(base.file, base.line, base.column + offset)
    return Position(base.file, base.line + newlines, offset - text.rfind("\n", 0, offset))


@dataclass(unsafe_hash=True)  # not frozen: the Expression protocol's attributes are plain ones
class ParsedExpression:
    """An Expression (hub.script.model) parsed from `text` written at `position`; treat as immutable."""

    text: str
    position: Position
    root: Node = field(repr=False)
    name_offsets: tuple[tuple[str, int], ...] = field(repr=False, default=())
    units: frozenset[str] = frozenset()  # units whose presence it reads (online("bench-1"))
    timed: bool = False  # reads `t`, age(), stale() or fresh(): its value changes with time alone
    locate: Locate | None = field(default=None, repr=False, compare=False, hash=False)
    # `root` as closures (hub.script.compiler), made at the first evaluation
    compiled: Compiled | None = field(default=None, init=False, repr=False, compare=False, hash=False)

    @property
    def names(self) -> frozenset[str]:
        """Readings, modules, signals and variables it reads (not `t`; see `timed`)."""
        return frozenset(name for name, _ in self.name_offsets)

    def evaluate(self, env: Environment) -> Value:
        compiled = self.compiled
        if compiled is None:
            compiled = self.compiled = compile_node(self.root)
        return compiled(env)

    def where(self, name: str) -> Position:
        """Where `name` is first written in the file."""
        offset = next((o for n, o in self.name_offsets if n == name), 0)
        return self.at(offset)

    def at(self, offset: int) -> Position:
        """Where the character at `offset` of the text is written in the file."""
        if self.locate is not None:
            return self.locate(offset)
        return position_at(self.position, self.text, offset)

    def infer(self, type_of: Callable[[str], Type]) -> Type:
        """The type of its value, given each name's; raises ExpressionError where types cannot fit."""
        return _infer(self.root, type_of, self)

    def error_at(self, offset: int, message: str) -> ExpressionError:
        at = self.at(offset)
        return ExpressionError(ScriptProblem(at.file, at.line, at.column, message))

    def __str__(self) -> str:
        return self.text


def parse_expression(text: str, position: Position, locate: Locate | None = None) -> ParsedExpression:
    """Parse `text`; raises ExpressionError naming the file, line and column of the bad character.

    `position` is where the text starts; `locate` (optional) maps an offset in
    the text to its place in the file when the text is not written as it
    reads (a folded or escaped YAML value).
    """
    if not isinstance(text, str):
        raise ExpressionError(ScriptProblem(position.file, position.line, position.column,
                                            "expected an expression, got a non-text value"))
    return _Parser(text, position, locate).parse()


class _Parser:
    def __init__(self, text: str, position: Position, locate: Locate | None = None) -> None:
        self.text = text
        self.position = position
        self.locate = locate
        self.tokens: list[Token] = []
        self.i = 0
        self.names: list[tuple[str, int]] = []
        self.units: set[str] = set()
        self.timed = False
        self.depth = 0  # open recursions: bounded before Python's own limit is reached

    def at(self, offset: int) -> Position:
        return self.locate(offset) if self.locate else position_at(self.position, self.text, offset)

    def fail(self, offset: int, message: str) -> ExpressionError:
        at = self.at(offset)
        return ExpressionError(ScriptProblem(at.file, at.line, at.column, message))

    def parse(self) -> ParsedExpression:
        if len(self.text) > MAX_CHARS:
            raise self.fail(0, f"an expression of {len(self.text)} characters; at most {MAX_CHARS}")
        try:
            self.tokens = tokenize(self.text)
        except LexError as exc:
            raise self.fail(exc.offset, exc.message) from None
        if self.tokens[0].kind == "end":
            raise self.fail(0, "expected an expression, got nothing")
        root = self.expression(0)
        token = self.peek()
        if token.kind != "end":
            hint = "; a chained comparison is written a < b and b < c" if token.text in _COMPARE else ""
            raise self.fail(token.start, f"expected an operator or the end, got {_shown(token)}{hint}")
        return ParsedExpression(self.text, self.position, root, tuple(self.names), frozenset(self.units),
                                self.timed, self.locate)

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def expect(self, text: str, what: str) -> Token:
        token = self.take()
        if token.text != text or token.kind != "op":
            raise self.fail(token.start, f"expected {what}, got {_shown(token)}")
        return token

    def height(self, *nodes: Node) -> int:
        height = 1 + max((n.height for n in nodes), default=0)
        if height > MAX_HEIGHT:
            raise self.fail(nodes[0].start if nodes else 0,
                            f"the expression nests deeper than {MAX_HEIGHT} levels; split it with variables")
        return height

    def expression(self, min_bp: int) -> Node:
        self.depth += 1
        if self.depth > MAX_HEIGHT:
            raise self.fail(self.peek().start, f"the expression nests deeper than {MAX_HEIGHT} levels; "
                                               "split it with variables")
        try:
            return self._expression(min_bp)
        finally:
            self.depth -= 1

    def _expression(self, min_bp: int) -> Node:
        left = self.prefix()
        while True:
            token = self.peek()
            op = token.text if token.kind in ("op", "ident") else ""
            bp = _BINARY.get(op)
            if bp is None or bp <= min_bp:
                if bp is not None and bp == 40 and min_bp == 40:
                    raise self.fail(token.start, "comparisons do not chain; write a < b and b < c")
                return left
            self.take()
            right = self.expression(bp - 1 if op == "**" else bp)
            height = self.height(left, right)
            if op in ("and", "or"):
                left = Logical(left.start, height, op, left, right)  # type: ignore[arg-type]
            elif op in _COMPARE:
                left = Compare(left.start, height, op, left, right)  # type: ignore[arg-type]
            else:
                left = Arithmetic(left.start, height, op, left, right)  # type: ignore[arg-type]

    def prefix(self) -> Node:
        token = self.take()
        if token.kind == "op" and token.text == "-":
            operand = self.expression(_NEG_BP)
            return Unary(token.start, self.height(operand), "-", operand)
        if token.kind == "ident" and token.text == "not":
            operand = self.expression(_NOT_BP)
            return Unary(token.start, self.height(operand), "not", operand)
        if token.kind == "op" and token.text == "(":
            inner = self.expression(0)
            self.expect(")", "')' to close the '(' at column "
                        f"{self.at(token.start).column}")
            return inner
        if token.kind in ("number", "string"):
            return Literal_(token.start, 1, token.value)  # type: ignore[arg-type]
        if token.kind == "ref":
            self.names.append((token.text, token.start))
            return Name(token.start, 1, token.text)
        if token.kind == "ident":
            return self.word(token)
        raise self.fail(token.start, f"expected a value, got {_shown(token)}")

    def word(self, token: Token) -> Node:
        word = token.text
        if word in ("true", "false"):
            return Literal_(token.start, 1, word == "true")
        if word in ("True", "False", "TRUE", "FALSE"):
            raise self.fail(token.start, f"{word!r}: booleans are written true and false")
        if word in KEYWORDS:
            raise self.fail(token.start, f"expected a value, got {word!r}")
        if self.peek().text == "(" and self.peek().kind == "op":
            return self.call(token)
        if word in FUNCTIONS:
            raise self.fail(token.start, f"{word} is a function: {FUNCTIONS[word].usage}")
        if word == TIME:
            self.timed = True
        else:
            self.names.append((word, token.start))
        return Name(token.start, 1, word)

    def call(self, token: Token) -> Node:
        signature = FUNCTIONS.get(token.text)
        if signature is None:
            known = ", ".join(sorted(FUNCTIONS))
            raise self.fail(token.start, f"unknown function {token.text!r}; the functions are {known}")
        self.take()  # (
        args: list[Node] = []
        if self.peek().text != ")":
            while True:
                args.append(self.argument(signature.args, signature.usage))
                if self.peek().text != ",":
                    break
                self.take()
        self.expect(")", f"',' or ')' in {signature.usage}")
        too_many = signature.max_args is not None and len(args) > signature.max_args
        if len(args) < signature.min_args or too_many:
            raise self.fail(token.start, f"{token.text} takes {_count(signature)}: {signature.usage}")
        if signature.args in ("name", "unit"):
            self.timed = self.timed or signature.args == "name"
        return Call(token.start, self.height(*args) if args else 1, token.text, tuple(args))

    def argument(self, kind: str, usage: str) -> Node:
        if kind == "number":
            return self.expression(0)
        token = self.take()
        if kind == "unit":
            if token.kind != "string":
                raise self.fail(token.start, f"expected a unit id in quotes: {usage}")
            self.units.add(str(token.value))
            return Literal_(token.start, 1, str(token.value))
        if token.kind == "ref" or (token.kind == "ident" and token.text not in KEYWORDS
                                   and token.text != TIME and token.text not in FUNCTIONS):
            self.names.append((token.text, token.start))
            return Name(token.start, 1, token.text)
        raise self.fail(token.start, f"expected a reading or signal name: {usage}")


def _count(signature: Signature) -> str:
    if signature.max_args is None:
        return f"at least {signature.min_args} values"
    if signature.min_args == signature.max_args:
        return f"{signature.min_args} value" + ("s" if signature.min_args > 1 else "")
    return f"{signature.min_args} to {signature.max_args} values"


def _shown(token: Token) -> str:
    if token.kind == "end":
        return "the end of the expression"
    text = token.text if len(token.text) <= 30 else token.text[:27] + "..."
    return repr(text)


# --- static types ------------------------------------------------------------

def _infer(node: Node, type_of: Callable[[str], Type], expr: ParsedExpression) -> Type:
    def want(child: Node, wanted: Type, what: str) -> None:
        got = _infer(child, type_of, expr)
        if got not in (wanted, "any"):
            raise expr.error_at(child.start, f"{what} expects {_TYPE_WORDS[wanted]}, got {_TYPE_WORDS[got]}")

    if isinstance(node, Literal_):
        return "boolean" if isinstance(node.value, bool) else "string" if isinstance(node.value, str) \
            else "number"
    if isinstance(node, Name):
        return "number" if node.name == TIME else type_of(node.name)
    if isinstance(node, Unary):
        want(node.operand, "boolean" if node.op == "not" else "number", node.op)
        return "boolean" if node.op == "not" else "number"
    if isinstance(node, Logical):
        want(node.left, "boolean", node.op)
        want(node.right, "boolean", node.op)
        return "boolean"
    if isinstance(node, Compare):
        left, right = _infer(node.left, type_of, expr), _infer(node.right, type_of, expr)
        ordered = node.op not in ("==", "!=")
        if ordered and "any" not in (left, right) and (left != right or left == "boolean"):
            raise expr.error_at(node.right.start, f"{node.op} compares two numbers or two strings, got "
                                                   f"{_TYPE_WORDS[left]} and {_TYPE_WORDS[right]}")
        return "boolean"
    if isinstance(node, Arithmetic):
        left, right = _infer(node.left, type_of, expr), _infer(node.right, type_of, expr)
        if node.op == "+" and "string" in (left, right) and {left, right} <= {"string", "any"}:
            return "string" if left == right else "any"
        for child, got in ((node.left, left), (node.right, right)):
            if got not in ("number", "any"):
                raise expr.error_at(child.start, f"{node.op} expects a number, got {_TYPE_WORDS[got]}")
        return "number"
    if isinstance(node, Call):
        signature = FUNCTIONS[node.function]
        if signature.args == "number":
            for arg in node.args:
                want(arg, "number", node.function)
        return signature.result
    return "any"


_TYPE_WORDS: dict[Type, str] = {"number": "a number", "boolean": "true or false (a condition)",
                                "string": "a string", "any": "a value"}
