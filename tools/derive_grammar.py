"""A small, safe arithmetic language for derived columns: tokenizer, recursive-descent parser, numpy evaluator.

Why hand-written: the expression comes from a model or a user and names columns of an untrusted table,
so it must never reach Python (no eval, exec, pandas.eval, DataFrame.eval or ast parsing of arbitrary
code). The language is tiny (arithmetic, six functions), so a tokenizer in the style of
:mod:`serendip.tools.filter_grammar`, a recursive-descent parser into the node classes below and a numpy
evaluator are shorter and safer than any general expression library: there is no attribute access, no
call of anything but the listed functions, and anything outside the grammar is a :class:`DeriveSyntaxError`
pointing at the offending character.

Grammar::

    expression := sum END
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := ("-" | "+") unary | primary
    primary    := NUMBER | column | "(" sum ")"
                | ("log10" | "ln" | "exp" | "sqrt" | "abs") "(" sum ")"
                | "pow" "(" sum "," ["-" | "+"] NUMBER ")"
    column     := NAME | `any text` (a backtick inside backticks is written ``)

A function name is a function only when "(" follows it; otherwise it names a column. Where an
operation is undefined (division by zero, log of a non-positive number, square root of a negative,
overflow) the row becomes missing and is counted.

Units are carried where the columns' units are known: sums keep a shared unit (``mag - mag`` is in mag),
products and quotients combine them, ``log10`` gives dex.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from serendip.tools.filter_grammar import (
    _NAME, _NUMBER, FilterSyntaxError, Token, _read_backticked, caret_snippet, describe_char, marked_snippet)

MAX_LENGTH = 2000
"""Longest expression accepted, in characters."""
MAX_DEPTH = 50
"""Deepest nesting accepted."""
FUNCTIONS = ("log10", "ln", "exp", "sqrt", "abs", "pow")
DIMENSIONLESS = ("", "dex", None)


class DeriveSyntaxError(ValueError):
    """An expression outside the grammar or naming an unknown column.

    Attributes:
        position: 0-based character position of the problem in the text.
        reason: The message without the position marker.
    """

    def __init__(self, text: str, position: int, reason: str) -> None:
        self.position = position
        self.reason = reason
        self.marked = marked_snippet(text, position)
        super().__init__(f"{reason}\n{caret_snippet(text, position)}")

    def one_line(self) -> str:
        """The message on one line, the position marked with ⟦here⟧."""
        return f"{self.reason} At ⟦here⟧: {self.marked}"


# --------------------------------------------------------------------------- tokens
def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens (NUMBER, NAME, OP, LPAREN, RPAREN, COMMA, END)."""
    if len(text) > MAX_LENGTH:
        raise DeriveSyntaxError(text, MAX_LENGTH, f"The expression is longer than {MAX_LENGTH} characters.")
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
        elif ch.isascii() and (ch.isdigit() or (ch == "." and i + 1 < n and text[i + 1].isdigit())):
            m = _NUMBER.match(text, i)
            end = m.end()
            if end < n and (text[end].isalnum() or text[end] in "_."):
                raise DeriveSyntaxError(text, end, f"Malformed number starting at position {i}: "
                                                   f"{describe_char(text[end])} cannot follow a number.")
            tokens.append(Token("NUMBER", m.group(), float(m.group()), i))
            i = end
        elif ch.isascii() and (ch.isalpha() or ch == "_"):
            m = _NAME.match(text, i)
            word, end = m.group(), m.end()
            if end < n and text[end] == ".":
                raise DeriveSyntaxError(text, end, f"Unexpected '.' after {word!r}: there is no attribute access. A "
                                                   f"column name with dots or spaces goes in backticks, e.g. "
                                                   f"`{word}.something`.")
            tokens.append(Token("NAME", word, word, i))
            i = end
        elif ch == "`":
            try:
                value, end = _read_backticked(text, i)
            except FilterSyntaxError as err:
                raise DeriveSyntaxError(text, err.position, err.reason) from None
            tokens.append(Token("QNAME", text[i:end], value, i))
            i = end
        elif text.startswith("**", i) or ch == "^":
            raise DeriveSyntaxError(text, i, "Powers are written pow(x, number), e.g. pow(a, 2).")
        elif ch in "+-*/":
            tokens.append(Token("OP", ch, ch, i))
            i += 1
        elif ch == "(":
            tokens.append(Token("LPAREN", ch, ch, i))
            i += 1
        elif ch == ")":
            tokens.append(Token("RPAREN", ch, ch, i))
            i += 1
        elif ch == ",":
            tokens.append(Token("COMMA", ch, ch, i))
            i += 1
        else:
            raise DeriveSyntaxError(text, i, f"Unexpected character {describe_char(ch)} at position {i}: expressions "
                                             "have numbers, columns, + - * /, parentheses and the functions "
                                             f"{', '.join(FUNCTIONS)}. Column names with other characters go in "
                                             "backticks: `my column`.")
    tokens.append(Token("END", "", None, n))
    return tokens


# --------------------------------------------------------------------------- tree
@dataclass(frozen=True)
class Number:
    value: float


@dataclass(frozen=True)
class Column:
    name: str


@dataclass(frozen=True)
class Negate:
    operand: object


@dataclass(frozen=True)
class Binary:
    op: str
    left: object
    right: object


@dataclass(frozen=True)
class Call:
    function: str
    argument: object
    exponent: float | None = None


class _Parser:
    def __init__(self, text: str, columns: list[str]) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0
        self.columns = columns
        self.known = set(columns)

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        t = self.tokens[self.i]
        self.i += 1
        return t

    def expect(self, kind: str, what: str) -> Token:
        if self.tok.kind != kind:
            raise DeriveSyntaxError(self.text, self.tok.pos, f"Expected {what} but found {self.tok_shown()}.")
        return self.take()

    def tok_shown(self) -> str:
        return "the end of the expression" if self.tok.kind == "END" else repr(self.tok.text[:40])

    def parse(self):
        if self.tok.kind == "END":
            raise DeriveSyntaxError(self.text, 0, "The expression is empty.")
        node = self.sum()
        if self.tok.kind != "END":
            raise DeriveSyntaxError(self.text, self.tok.pos, f"Unexpected {self.tok_shown()}: expected an operator "
                                                              "(+ - * /) or the end of the expression.")
        return node

    def sum(self):
        node = self.product()
        while self.tok.kind == "OP" and self.tok.value in "+-":
            op = self.take().value
            node = Binary(op, node, self.product())
        return node

    def product(self):
        node = self.unary()
        while self.tok.kind == "OP" and self.tok.value in "*/":
            op = self.take().value
            node = Binary(op, node, self.unary())
        return node

    def unary(self):
        if self.tok.kind == "OP" and self.tok.value in "+-":
            sign = self.take().value
            self.enter()
            inner = self.unary()
            self.depth -= 1
            return Negate(inner) if sign == "-" else inner
        return self.primary()

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise DeriveSyntaxError(self.text, self.tok.pos, f"The expression nests deeper than {MAX_DEPTH} levels.")

    def primary(self):
        t = self.tok
        if t.kind == "NUMBER":
            self.take()
            return Number(float(t.value))
        if t.kind == "LPAREN":
            self.take()
            self.enter()
            node = self.sum()
            self.depth -= 1
            self.expect("RPAREN", "')'")
            return node
        if t.kind == "NAME" and self.tokens[self.i + 1].kind == "LPAREN":
            return self.call()
        if t.kind in ("NAME", "QNAME"):
            self.take()
            return Column(self.column(t))
        raise DeriveSyntaxError(self.text, t.pos, f"Expected a number, a column, a function or '(' but found "
                                                  f"{self.tok_shown()}.")

    def call(self):
        t = self.take()
        name = t.value
        if name not in FUNCTIONS:
            close = difflib.get_close_matches(name.lower(), FUNCTIONS, n=2, cutoff=0.5)
            hint = f" Did you mean {' or '.join(close)}?" if close else ""
            raise DeriveSyntaxError(self.text, t.pos, f"Unknown function {name!r}: the functions are "
                                                      f"{', '.join(FUNCTIONS)}.{hint}")
        self.take()  # "("
        self.enter()
        arg = self.sum()
        exponent = None
        if name == "pow":
            self.expect("COMMA", "',' and a number (pow(x, number))")
            sign = 1.0
            if self.tok.kind == "OP" and self.tok.value in "+-":
                sign = -1.0 if self.take().value == "-" else 1.0
            exponent = sign * float(self.expect("NUMBER", "a number as the exponent of pow").value)
        self.depth -= 1
        self.expect("RPAREN", f"')' to close {name}(")
        return Call(name, arg, exponent)

    def column(self, t: Token) -> str:
        name = t.value
        if name in self.known:
            return name
        folded = [c for c in self.columns if c.lower() == str(name).lower()]
        if len(folded) == 1:
            return folded[0]
        close = difflib.get_close_matches(str(name), self.columns, n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise DeriveSyntaxError(self.text, t.pos, f"Unknown column {str(name)[:60]!r}.{hint}")


def parse(text: str, columns: list[str]):
    """Parse ``text`` into an expression tree over ``columns``.

    Raises:
        DeriveSyntaxError: The text is outside the grammar or names an unknown column.
    """
    return _Parser(str(text), list(columns)).parse()


def columns_used(node) -> list[str]:
    """The columns an expression reads, in order of first use."""
    out: list[str] = []

    def walk(n):
        if isinstance(n, Column) and n.name not in out:
            out.append(n.name)
        elif isinstance(n, Negate):
            walk(n.operand)
        elif isinstance(n, Binary):
            walk(n.left)
            walk(n.right)
        elif isinstance(n, Call):
            walk(n.argument)

    walk(node)
    return out


# --------------------------------------------------------------------------- evaluation
def evaluate(node, values: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    """Values of the expression per row; undefined operations give NaN (never an exception)."""
    with np.errstate(all="ignore"):
        out = _eval(node, values, n)
    out = np.asarray(out, dtype=float)
    if out.ndim == 0:
        out = np.full(n, float(out))
    return np.where(np.isfinite(out), out, np.nan)


def _eval(node, values, n):
    if isinstance(node, Number):
        return np.float64(node.value)
    if isinstance(node, Column):
        return np.asarray(values[node.name], dtype=float)
    if isinstance(node, Negate):
        return -_eval(node.operand, values, n)
    if isinstance(node, Binary):
        a, b = _eval(node.left, values, n), _eval(node.right, values, n)
        if node.op == "+":
            return a + b
        if node.op == "-":
            return a - b
        if node.op == "*":
            return a * b
        return np.where(b == 0, np.nan, a / np.where(b == 0, 1.0, b))
    x = _eval(node.argument, values, n)
    f = node.function
    if f == "log10":
        return np.where(x > 0, np.log10(np.where(x > 0, x, 1.0)), np.nan)
    if f == "ln":
        return np.where(x > 0, np.log(np.where(x > 0, x, 1.0)), np.nan)
    if f == "exp":
        return np.exp(x)
    if f == "sqrt":
        return np.where(x >= 0, np.sqrt(np.where(x >= 0, x, 0.0)), np.nan)
    if f == "abs":
        return np.abs(x)
    return np.power(x, node.exponent)


# --------------------------------------------------------------------------- units
def unit_of(node, units: Mapping[str, str | None]) -> tuple[str | None, list[str]]:
    """The unit of the expression's result (None = unknown) and notes on mixed units."""
    notes: list[str] = []
    return _unit(node, units, notes), notes


def _unit(node, units, notes):
    if isinstance(node, Number):
        return ""
    if isinstance(node, Column):
        u = units.get(node.name)
        return u.strip() if isinstance(u, str) and u.strip() else None
    if isinstance(node, Negate):
        return _unit(node.operand, units, notes)
    if isinstance(node, Binary):
        a, b = _unit(node.left, units, notes), _unit(node.right, units, notes)
        if node.op in "+-":
            if a == b:
                return a
            if a is None or b is None:
                return None
            if b in DIMENSIONLESS:
                return a  # a distance modulus or offset added to a quantity keeps its unit (mag + dex)
            if a in DIMENSIONLESS:
                return b
            notes.append(f"adds quantities in different units ({a}, {b})")
            return None
        if a is None or b is None:
            return None
        if node.op == "*":
            return a or b if "" in (a, b) else f"{a} {b}"
        if a == b:
            return ""
        return a if b == "" else f"{a or '1'}/({b})" if " " in b else f"{a or '1'}/{b}"
    inner = _unit(node.argument, units, notes)
    if node.function == "log10":
        return "dex"
    if node.function in ("ln", "exp"):
        return ""
    if node.function == "abs":
        return inner
    if inner is None:
        return None
    if inner == "":
        return ""
    power = 0.5 if node.function == "sqrt" else node.exponent
    return f"({inner})^{power:g}"


def canonical(node) -> str:
    """The expression written back in a standard form (for reports and names)."""
    if isinstance(node, Number):
        return f"{node.value:g}"
    if isinstance(node, Column):
        return node.name
    if isinstance(node, Negate):
        return f"-{_wrapped(node.operand, 3)}"
    if isinstance(node, Binary):
        level = 1 if node.op in "+-" else 2
        right_level = level + 1 if node.op in "-/" else level
        return f"{_wrapped(node.left, level)} {node.op} {_wrapped(node.right, right_level)}"
    if node.function == "pow":
        return f"pow({canonical(node.argument)}, {node.exponent:g})"
    return f"{node.function}({canonical(node.argument)})"


def _wrapped(node, level: int) -> str:
    own = 1 if isinstance(node, Binary) and node.op in "+-" else 2 if isinstance(node, Binary) else 4
    text = canonical(node)
    return f"({text})" if own < level else text
