"""A small, safe row-filter language: tokenizer, recursive-descent parser and numpy evaluator.

The text is never handed to Python (no eval, exec, DataFrame.query, pandas.eval or ast.literal_eval):
it is tokenized by hand, parsed into a tree of the node classes below, and the tree is evaluated with
numpy/pandas comparisons on column values. Anything outside the grammar is a :class:`FilterSyntaxError`.

Grammar (keywords are case-insensitive)::

    filter     := or_expr END
    or_expr    := and_expr (("or" | "||") and_expr)*
    and_expr   := not_expr (("and" | "&&") not_expr)*
    not_expr   := ("not" | "!") not_expr | primary
    primary    := "(" or_expr ")" | predicate
    predicate  := operand (cmp operand)+               -- chains: 0.3 < mass <= 13
                | column "is" ["not"] "null"
                | column ["not"] "in" "(" literal ("," literal)* [","] ")"
                | column                                -- a flag column on its own
    cmp        := "<" | "<=" | ">" | ">=" | "==" | "=" | "!="
    operand    := column | literal
    column     := NAME | `any text` (a backtick inside backticks is written ``)
    literal    := ["-" | "+"] NUMBER | 'text' | "text" | true | false | null

Missing values follow SQL's three-valued logic: a comparison with a missing value is neither true
nor false, so neither ``x > 1`` nor ``not (x > 1)`` selects a row where ``x`` is missing; use
``x is null``. ``x == null`` means ``x is null`` and ``x != null`` means ``x is not null``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import pandas as pd

MAX_LENGTH = 2000
"""Longest filter text accepted, in characters."""

MAX_DEPTH = 50
"""Deepest nesting of parentheses and negations accepted."""

KEYWORDS = {"and", "or", "not", "in", "is", "null", "true", "false"}
COMPARISONS = {"<", "<=", ">", ">=", "==", "!="}
FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
TRUE_WORDS = {"true", "t", "yes", "y", "1"}
FALSE_WORDS = {"false", "f", "no", "n", "0"}

_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t"}


class FilterSyntaxError(ValueError):
    """A filter text outside the grammar, or a comparison the column's values cannot support.

    Attributes:
        position: 0-based character position of the problem in the text.
        reason: The message without the caret snippet.
    """

    def __init__(self, text: str, position: int, reason: str) -> None:
        self.position = position
        self.reason = reason
        self.marked = marked_snippet(text, position)
        super().__init__(f"{reason}\n{caret_snippet(text, position)}")

    def one_line(self) -> str:
        """The message on one line, the position marked with ⟦here⟧ inside a window of the text."""
        return f"{self.reason} At ⟦here⟧: {self.marked}"


def caret_snippet(text: str, position: int, width: int = 60) -> str:
    """Two lines: a window of ``text`` around ``position`` and a caret under it."""
    start = max(0, position - width // 2)
    end = min(len(text), start + width)
    window = text[start:end]
    shown = "".join(ch if ch.isprintable() else " " for ch in window)
    prefix = "..." if start > 0 else ""
    suffix = "..." if end < len(text) else ""
    return f"  {prefix}{shown}{suffix}\n  {' ' * (len(prefix) + position - start)}^"


def marked_snippet(text: str, position: int, width: int = 60) -> str:
    """One line: a window of ``text`` around ``position`` with ⟦here⟧ inserted at it."""
    start = max(0, position - width // 2)
    end = min(len(text), position + width // 2)
    window = "".join(ch if ch.isprintable() else " " for ch in text[start:end])
    cut = position - start
    return f"{'...' if start > 0 else ''}{window[:cut]}⟦here⟧{window[cut:]}{'...' if end < len(text) else ''}"


def describe_char(ch: str) -> str:
    """A character as an error message shows it (with its code point when not plain ASCII)."""
    if ch.isascii() and ch.isprintable():
        return repr(ch)
    return f"{ch!r} (U+{ord(ch):04X})" if ch.isprintable() else f"U+{ord(ch):04X}"


# --------------------------------------------------------------------------- tokens
@dataclass(frozen=True)
class Token:
    """One lexical unit: kind is NUMBER, STRING, NAME, KEYWORD, OP, LPAREN, RPAREN, COMMA, SIGN or END."""

    kind: str
    text: str
    value: object
    pos: int

    def shown(self) -> str:
        """How an error message names this token."""
        if self.kind == "END":
            return "the end of the expression"
        return repr(self.text[:40])


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens; raise :class:`FilterSyntaxError` on anything outside the grammar."""
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
                raise FilterSyntaxError(text, end, f"Malformed number starting at position {i}: "
                                                   f"{describe_char(text[end])} cannot follow a number.")
            tokens.append(Token("NUMBER", m.group(), float(m.group()), i))
            i = end
        elif ch.isascii() and (ch.isalpha() or ch == "_"):
            m = _NAME.match(text, i)
            word = m.group()
            end = m.end()
            if end < n and text[end] == ".":
                raise FilterSyntaxError(text, end, f"Unexpected '.' after {word!r}: attributes are not part of the "
                                                   f"filter language. A column name with dots, spaces or other "
                                                   f"characters goes in backticks, e.g. `{word}.something` > 0.")
            if word.lower() in KEYWORDS:
                tokens.append(Token("KEYWORD", word, word.lower(), i))
            else:
                tokens.append(Token("NAME", word, word, i))
            i = end
        elif ch in "'\"":
            value, end = _read_quoted(text, i, ch)
            tokens.append(Token("STRING", text[i:end], value, i))
            i = end
        elif ch == "`":
            value, end = _read_backticked(text, i)
            tokens.append(Token("NAME", text[i:end], value, i))
            i = end
        elif text.startswith(("<=", ">=", "==", "!="), i):
            tokens.append(Token("OP", text[i:i + 2], text[i:i + 2], i))
            i += 2
        elif text.startswith("&&", i):
            tokens.append(Token("KEYWORD", "&&", "and", i))
            i += 2
        elif text.startswith("||", i):
            tokens.append(Token("KEYWORD", "||", "or", i))
            i += 2
        elif ch in "<>":
            tokens.append(Token("OP", ch, ch, i))
            i += 1
        elif ch == "=":
            tokens.append(Token("OP", ch, "==", i))
            i += 1
        elif ch == "!":
            tokens.append(Token("KEYWORD", ch, "not", i))
            i += 1
        elif ch in "-+":
            tokens.append(Token("SIGN", ch, ch, i))
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
            hint = (" Column names with spaces or other characters go in backticks: `my column` > 0."
                    if not ch.isascii() or ch in ".[]{}$@#%^~\\:;?" else "")
            raise FilterSyntaxError(text, i, f"Unexpected character {describe_char(ch)} at position {i}: the filter "
                                             f"language has comparisons (< <= > >= == !=), and/or/not, in (...), "
                                             f"is null, numbers and quoted strings.{hint}")
    tokens.append(Token("END", "", None, n))
    return tokens


def _read_quoted(text: str, start: int, quote: str) -> tuple[str, int]:
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            if i + 1 >= len(text):
                break
            nxt = text[i + 1]
            if nxt not in _ESCAPES:
                raise FilterSyntaxError(text, i, f"Unknown escape \\{nxt} in a quoted string at position {i}; "
                                                 "use \\\\, \\', \\\", \\n or \\t.")
            out.append(_ESCAPES[nxt])
            i += 2
        elif ch == quote:
            return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1
    raise FilterSyntaxError(text, start, f"Unterminated string starting at position {start}: add the closing {quote}.")


def _read_backticked(text: str, start: int) -> tuple[str, int]:
    out: list[str] = []
    i = start + 1
    while i < len(text):
        if text[i] == "`":
            if i + 1 < len(text) and text[i + 1] == "`":
                out.append("`")
                i += 2
                continue
            if not out:
                raise FilterSyntaxError(text, start, f"Empty column name `` at position {start}.")
            return "".join(out), i + 1
        out.append(text[i])
        i += 1
    raise FilterSyntaxError(text, start, f"Unterminated column name starting at position {start}: add the closing "
                                         "backtick (a backtick inside a name is written twice: ``).")


# --------------------------------------------------------------------------- syntax tree
@dataclass(frozen=True)
class Column:
    """A column reference."""

    name: str
    pos: int


@dataclass(frozen=True)
class Literal:
    """A constant: float, str, bool, or None for null."""

    value: object
    pos: int


@dataclass(frozen=True)
class Compare:
    """``left op right`` with op one of < <= > >= == !=."""

    op: str
    left: Column | Literal
    right: Column | Literal
    pos: int


@dataclass(frozen=True)
class IsNull:
    """``column is null`` (or ``is not null`` when negated)."""

    column: Column
    negated: bool


@dataclass(frozen=True)
class Membership:
    """``column in (values)`` (or ``not in`` when negated)."""

    column: Column
    values: tuple[Literal, ...]
    negated: bool


@dataclass(frozen=True)
class Truthy:
    """A flag column standing alone: true where the flag is set."""

    column: Column


@dataclass(frozen=True)
class Not:
    """Logical negation."""

    operand: "Node"


@dataclass(frozen=True)
class And:
    """Logical conjunction of two or more operands."""

    operands: tuple["Node", ...]


@dataclass(frozen=True)
class Or:
    """Logical disjunction of two or more operands."""

    operands: tuple["Node", ...]


Node = Compare | IsNull | Membership | Truthy | Not | And | Or


class Parser:
    """Recursive-descent parser over the token list of one filter text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def is_kw(self, *words: str) -> bool:
        return self.tok.kind == "KEYWORD" and self.tok.value in words

    def fail(self, expected: str, tok: Token | None = None) -> FilterSyntaxError:
        tok = tok or self.tok
        return FilterSyntaxError(self.text, tok.pos, f"Cannot parse the filter at position {tok.pos}: expected "
                                                     f"{expected}, found {tok.shown()}.")

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FilterSyntaxError(self.text, self.tok.pos, f"The filter nests parentheses or negations more than "
                                                             f"{MAX_DEPTH} levels deep; simplify it.")

    def parse(self) -> Node:
        node = self.or_expr()
        if self.tok.kind != "END":
            raise self.fail("'and', 'or', ')' or the end of the expression"
                            if self.tok.kind != "RPAREN" else "the end of the expression (unbalanced ')')")
        return node

    def or_expr(self) -> Node:
        items = [self.and_expr()]
        while self.is_kw("or"):
            self.advance()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Node:
        items = [self.not_expr()]
        while self.is_kw("and"):
            self.advance()
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else And(tuple(items))

    def not_expr(self) -> Node:
        if self.is_kw("not"):
            self.advance()
            self.enter()
            node = Not(self.not_expr())
            self.depth -= 1
            return node
        return self.primary()

    def primary(self) -> Node:
        if self.tok.kind == "LPAREN":
            self.advance()
            self.enter()
            node = self.or_expr()
            if self.tok.kind != "RPAREN":
                raise self.fail("')' or 'and'/'or'")
            self.advance()
            self.depth -= 1
            return node
        return self.predicate()

    def operand(self) -> Column | Literal:
        tok = self.tok
        if tok.kind == "NAME":
            self.advance()
            return Column(str(tok.value), tok.pos)
        return self.literal("a column name or a value (number, 'quoted text', true, false, null)")

    def literal(self, expected: str) -> Literal:
        tok = self.tok
        if tok.kind == "SIGN":
            self.advance()
            if self.tok.kind != "NUMBER":
                raise self.fail(f"a number after {tok.text!r}")
            num = self.advance()
            return Literal(-num.value if tok.text == "-" else num.value, tok.pos)
        if tok.kind in ("NUMBER", "STRING"):
            self.advance()
            return Literal(tok.value, tok.pos)
        if tok.kind == "KEYWORD" and tok.value in ("true", "false", "null"):
            self.advance()
            return Literal({"true": True, "false": False, "null": None}[tok.value], tok.pos)
        raise self.fail(expected)

    def predicate(self) -> Node:
        start = self.tok
        left = self.operand()
        if self.tok.kind == "OP":
            return self.comparison_chain(left)
        if not isinstance(left, Column):
            raise self.fail("a comparison operator (< <= > >= == !=) after a value")
        if self.is_kw("is"):
            self.advance()
            negated = False
            if self.is_kw("not"):
                self.advance()
                negated = True
            if not self.is_kw("null"):
                raise self.fail("'null' after 'is'" + (" not" if negated else ""))
            self.advance()
            return IsNull(left, negated)
        if self.is_kw("not") and self.tokens[self.i + 1].kind == "KEYWORD" and self.tokens[self.i + 1].value == "in":
            self.advance()
            return self.membership(left, negated=True)
        if self.is_kw("in"):
            return self.membership(left, negated=False)
        if self.tok.kind in ("END", "RPAREN") or self.is_kw("and", "or"):
            return Truthy(left)
        raise self.fail(f"a comparison operator, 'in', 'is null', 'and', 'or' or ')' after the column "
                        f"{str(left.name)[:40]!r} (started at position {start.pos})")

    def comparison_chain(self, first: Column | Literal) -> Node:
        parts: list[Compare] = []
        left = first
        while self.tok.kind == "OP":
            op_tok = self.advance()
            right = self.operand()
            if isinstance(left, Literal) and isinstance(right, Literal):
                raise FilterSyntaxError(self.text, op_tok.pos, f"The comparison at position {op_tok.pos} is between "
                                                               "two values; one side must be a column.")
            parts.append(Compare(str(op_tok.value), left, right, op_tok.pos))
            left = right
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def membership(self, column: Column, negated: bool) -> Membership:
        self.advance()  # 'in'
        if self.tok.kind != "LPAREN":
            raise self.fail("'(' opening the list of values after 'in'")
        self.advance()
        values = [self.literal("a value (number, 'quoted text', true, false, null) in the list")]
        while self.tok.kind == "COMMA":
            self.advance()
            if self.tok.kind == "RPAREN":
                break
            values.append(self.literal("a value (number, 'quoted text', true, false, null) after ','"))
        if self.tok.kind != "RPAREN":
            raise self.fail("',' or ')' in the list of values")
        self.advance()
        return Membership(column, tuple(values), negated)


# --------------------------------------------------------------------------- evaluation
class Filter:
    """A parsed filter: its text, tree and the columns it names.

    Args:
        text: The filter text (at most :data:`MAX_LENGTH` characters).
    """

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise TypeError("filter text must be a str")
        if len(text) > MAX_LENGTH:
            raise FilterSyntaxError(text[:80], 80 if len(text) > 80 else len(text),
                                    f"The filter is {len(text)} characters long; the limit is {MAX_LENGTH}.")
        if not text.strip():
            raise FilterSyntaxError(text, 0, "The filter is empty.")
        self.text = text
        self.tree = Parser(text).parse()

    @property
    def columns(self) -> list[str]:
        """Column names the filter refers to, in order of first appearance."""
        out: list[str] = []

        def walk(node) -> None:
            if isinstance(node, Column):
                if node.name not in out:
                    out.append(node.name)
            elif isinstance(node, Compare):
                walk(node.left)
                walk(node.right)
            elif isinstance(node, (IsNull, Membership, Truthy)):
                walk(node.column)
            elif isinstance(node, Not):
                walk(node.operand)
            elif isinstance(node, (And, Or)):
                for op in node.operands:
                    walk(op)

        walk(self.tree)
        return out

    def evaluate(self, get_column: Callable[[str], pd.Series], roles: Mapping[str, str] | None = None) -> np.ndarray:
        """The boolean row mask where the filter is true (missing values never satisfy a comparison).

        Args:
            get_column: Returns the values of a column (a Series over all rows) by name.
            roles: Optional table roles by column name ('flag', 'datetime' ...) used to read flags and dates.
        """
        ev = _Evaluator(self.text, get_column, roles or {})
        true, _ = ev.eval(self.tree)
        return true


class _Evaluator:
    """Evaluates a tree to a pair of masks (definitely true, definitely false): Kleene logic."""

    def __init__(self, text: str, get_column: Callable[[str], pd.Series], roles: Mapping[str, str]) -> None:
        self.text = text
        self.get_column = get_column
        self.roles = roles
        self.cache: dict[str, pd.Series] = {}

    def fail(self, pos: int, reason: str) -> FilterSyntaxError:
        return FilterSyntaxError(self.text, pos, reason)

    def series(self, col: Column) -> pd.Series:
        if col.name not in self.cache:
            self.cache[col.name] = self.get_column(col.name)
        return self.cache[col.name]

    def kind(self, col: Column) -> str:
        s = self.series(col)
        if pd.api.types.is_bool_dtype(s.dtype):
            return "bool"
        if pd.api.types.is_numeric_dtype(s.dtype):
            return "number"
        if pd.api.types.is_datetime64_any_dtype(s.dtype):
            return "datetime"
        return "text"

    def eval(self, node) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(node, And):
            t, f = self.eval(node.operands[0])
            for op in node.operands[1:]:
                t2, f2 = self.eval(op)
                t, f = t & t2, f | f2
            return t, f
        if isinstance(node, Or):
            t, f = self.eval(node.operands[0])
            for op in node.operands[1:]:
                t2, f2 = self.eval(op)
                t, f = t | t2, f & f2
            return t, f
        if isinstance(node, Not):
            t, f = self.eval(node.operand)
            return f, t
        if isinstance(node, IsNull):
            missing = self.series(node.column).isna().to_numpy()
            return (~missing, missing) if node.negated else (missing, ~missing)
        if isinstance(node, Truthy):
            values, known = self.as_bool(node.column, node.column.pos)
            return values & known, ~values & known
        if isinstance(node, Membership):
            return self.membership(node)
        if isinstance(node, Compare):
            return self.compare(node)
        raise TypeError(f"unknown node {type(node).__name__}")

    # ---- values of one column as numbers / booleans / text / dates, with a "known" mask
    def as_bool(self, col: Column, pos: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.series(col)
        kind = self.kind(col)
        known = s.notna().to_numpy()
        if kind == "bool":
            return s.fillna(False).to_numpy(dtype=bool), known
        if kind == "number":
            v = s.to_numpy(dtype=float, na_value=np.nan)
            if np.isin(v[known], [0.0, 1.0]).all():
                return v == 1.0, known
        elif kind == "text" and self.roles.get(col.name) == "flag":
            low = s.astype(str).str.strip().str.lower()
            t = low.isin(TRUE_WORDS).to_numpy() & known
            f = low.isin(FALSE_WORDS).to_numpy() & known
            return t, t | f
        raise self.fail(pos, f"Column {col.name!r} is not a true/false flag; compare it with a value instead "
                             f"(e.g. `{col.name}` > 0 or `{col.name}` == 'A').")

    def as_number(self, col: Column) -> tuple[np.ndarray, np.ndarray]:
        s = self.series(col)
        v = s.to_numpy(dtype=float, na_value=np.nan)
        return v, np.isfinite(v)

    def as_datetime(self, col: Column) -> tuple[np.ndarray, np.ndarray]:
        s = self.series(col)
        if self.kind(col) != "datetime":
            s = pd.to_datetime(s, errors="coerce", format="mixed")
        v = s.to_numpy(dtype="datetime64[ns]")
        return v, ~np.isnat(v)

    def is_date(self, col: Column) -> bool:
        return self.kind(col) == "datetime" or self.roles.get(col.name) == "datetime"

    def literal_date(self, lit: Literal) -> np.datetime64:
        try:
            stamp = pd.Timestamp(str(lit.value))
        except (ValueError, TypeError):
            stamp = pd.NaT
        if pd.isna(stamp):
            raise self.fail(lit.pos, f"{str(lit.value)[:40]!r} is not a date (write e.g. '2020-01-31').")
        return np.datetime64(stamp.tz_localize(None) if stamp.tzinfo else stamp, "ns")

    # ---- comparisons
    def compare(self, node: Compare) -> tuple[np.ndarray, np.ndarray]:
        left, right, op = node.left, node.right, node.op
        if isinstance(left, Literal):
            left, right, op = right, left, FLIPPED[op]
        assert isinstance(left, Column)
        if isinstance(right, Column):
            return self.compare_columns(left, op, right, node.pos)
        return self.compare_literal(left, op, right, node.pos)

    def compare_literal(self, col: Column, op: str, lit: Literal, pos: int) -> tuple[np.ndarray, np.ndarray]:
        value = lit.value
        kind = self.kind(col)
        if value is None:
            if op not in ("==", "!="):
                raise self.fail(pos, "Only == and != (or 'is null' / 'is not null') can compare with null.")
            missing = self.series(col).isna().to_numpy()
            return (missing, ~missing) if op == "==" else (~missing, missing)
        if isinstance(value, bool):
            if op not in ("==", "!="):
                raise self.fail(pos, "Only == and != can compare with true or false.")
            v, known = self.as_bool(col, pos)
            res = (v == value) if op == "==" else (v != value)
            return res & known, ~res & known
        if isinstance(value, str):
            if kind == "number" or kind == "bool":
                raise self.fail(lit.pos, f"Column {col.name!r} is numeric; compare it with a number, not the quoted "
                                         f"text {value[:40]!r}.")
            if self.is_date(col):
                v, known = self.as_datetime(col)
                return _apply(op, v, self.literal_date(lit), known)
            if op not in ("==", "!="):
                raise self.fail(pos, f"Column {col.name!r} holds text; only == , != and 'in' apply to it "
                                     "(ordering comparisons need numbers or dates).")
            s = self.series(col)
            known = s.notna().to_numpy()
            eq = (s.astype(str) == value).to_numpy() & known
            return (eq, ~eq & known) if op == "==" else (~eq & known, eq)
        # a number
        if kind == "bool":
            v, known = self.as_bool(col, pos)
            return _apply(op, v.astype(float), float(value), known)
        if kind != "number":
            raise self.fail(lit.pos, f"Column {col.name!r} holds text; quote the value ('{_number_text(value)}') "
                                     "to compare with text.")
        v, known = self.as_number(col)
        return _apply(op, v, float(value), known)

    def compare_columns(self, a: Column, op: str, b: Column, pos: int) -> tuple[np.ndarray, np.ndarray]:
        ka, kb = self.kind(a), self.kind(b)
        if ka in ("number", "bool") and kb in ("number", "bool"):
            va, na = self.as_number(a)
            vb, nb = self.as_number(b)
            return _apply(op, va, vb, na & nb)
        if self.is_date(a) and self.is_date(b):
            va, na = self.as_datetime(a)
            vb, nb = self.as_datetime(b)
            return _apply(op, va, vb, na & nb)
        if ka == "text" and kb == "text":
            if op not in ("==", "!="):
                raise self.fail(pos, "Ordering comparisons (< <= > >=) between text columns are not supported; "
                                     "use == or !=.")
            sa, sb = self.series(a), self.series(b)
            known = (sa.notna() & sb.notna()).to_numpy()
            eq = (sa.astype(str).to_numpy() == sb.astype(str).to_numpy()) & known
            return (eq, ~eq & known) if op == "==" else (~eq & known, eq)
        raise self.fail(pos, f"Cannot compare column {a.name!r} ({ka}) with column {b.name!r} ({kb}); "
                             "both must be numeric, both dates, or both text.")

    def membership(self, node: Membership) -> tuple[np.ndarray, np.ndarray]:
        col = node.column
        s = self.series(col)
        missing = s.isna().to_numpy()
        known = ~missing
        hit = np.zeros(len(s), dtype=bool)
        null_listed = False
        for lit in node.values:
            if lit.value is None:
                null_listed = True
                continue
            t, _ = self.compare_literal(col, "==", lit, lit.pos)
            hit |= t
        if null_listed:
            hit |= missing
            known = np.ones(len(s), dtype=bool)
        t, f = hit, ~hit & known
        return (f, t) if node.negated else (t, f)


def _apply(op: str, left, right, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(invalid="ignore"):
        if op == "<":
            res = left < right
        elif op == "<=":
            res = left <= right
        elif op == ">":
            res = left > right
        elif op == ">=":
            res = left >= right
        elif op == "==":
            res = left == right
        else:
            res = left != right
    res = np.asarray(res, dtype=bool)
    return res & known, ~res & known


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def parse_filter(text: str) -> Filter:
    """Parse ``text``; raise :class:`FilterSyntaxError` (with a caret snippet) when it is not a valid filter."""
    return Filter(text)
