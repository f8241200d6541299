"""A recursive-descent parser for Dataview's query language (DQL).

It reads the text directly (no separate token stream) because several tokens depend on
where they stand: ``#tag`` only in FROM, ``date(2023-07-18)`` and ``dur(2 days)`` literals,
and identifiers that may contain dashes (``date-of-note``), as in Dataview, so subtraction
needs spaces around the minus. Errors name the line and column where parsing stopped
and what was expected there.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable
from typing import Any

from kb.query import ast
from kb.query.errors import QueryError
from kb.query.values import (
    EMOJI,
    MAX_DURATION_CHARS,
    Duration,
    LazyModule,
    link_from_text,
    parse_date,
    parse_duration,
)

regex = LazyModule("regex")  # emoji and Unicode letters in names; see _Pattern

_WS = re.compile(r"(?:\s+|//[^\n]*)*")
# a letter or an emoji first (as Dataview), then letters, digits, '_', '-' or emoji; a dash
# never ends a name, so "a -b" and "a- b" still subtract
_IDENT_BODY = rf"(?:[^\W\d]|{EMOJI})(?:(?:[\w-]|{EMOJI})*(?:\w|{EMOJI}))?"


class _Pattern:
    """A ``regex`` pattern compiled on first use, tried first as a stdlib ``re`` pattern
    that covers the usual case: ``plain`` gives the same match wherever it matches text
    that ``settled`` accepts (the match and the character after it are ones where the two
    patterns cannot differ); anywhere else the full pattern decides."""

    def __init__(self, source: str, plain: str, settled: Callable[[str, int, int], bool]) -> None:
        self.source = source
        self.plain = re.compile(plain)
        self.settled = settled
        self._full: Any = None

    def full(self) -> Any:
        if self._full is None:
            self._full = regex.compile(self.source)
        return self._full

    def match(self, text: str, pos: int = 0) -> Any:
        m = self.plain.match(text, pos)
        if m is not None and self.settled(text, m.start(), m.end()):
            return m
        return self.full().match(text, pos)


def _ascii_word_ends(text: str, start: int, end: int) -> bool:
    """An ASCII name not followed by '-' or a non-ASCII character: there the full
    pattern (letters of any script, emoji, dashes inside) matches exactly the same text."""
    return text[start:end].isascii() and (end == len(text) or (text[end] < "\x80" and text[end] != "-"))


_IDENT = _Pattern(_IDENT_BODY, r"[A-Za-z_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?", _ascii_word_ends)
_NUMBER = re.compile(r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_TAG = re.compile(r"#[^\s,()#\"'\[\]!]+")


class _LambdaHead(_Pattern):
    """A lambda's head ``(a, b) =>``: where no "=>" follows there is nothing to match."""

    def match(self, text: str, pos: int = 0) -> Any:
        if text.find("=>", pos) < 0:
            return None
        return self.full().match(text, pos)


_LAMBDA_HEAD = _LambdaHead(rf"\(\s*((?:{_IDENT_BODY})(?:\s*,\s*{_IDENT_BODY})*)?\s*\)\s*=>", r"(?!)", lambda *_: False)
_COMPARE_OPS = ("!=", "<=", ">=", "==", "=", "<", ">")
_COMMANDS = ("from", "where", "sort", "group", "flatten", "limit")
_MAX_DEPTH = 200


def _kw(word: str) -> re.Pattern[str]:
    return re.compile(word + r"(?![\w-])", re.I)


_KW = {
    w: _kw(w)
    for w in (
        "list",
        "table",
        "task",
        "calendar",
        "without",
        "id",
        "from",
        "where",
        "sort",
        "group",
        "by",
        "flatten",
        "limit",
        "as",
        "and",
        "or",
        "asc",
        "ascending",
        "desc",
        "descending",
        "outgoing",
        "true",
        "false",
        "null",
        "csv",
    )
}


def line_col(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return line, col


class Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0
        self.last_ws = (0, 0)
        self.last_end = -1

    # ---- low-level helpers --------------------------------------------------------------
    def error(self, expected: str, pos: int | None = None) -> QueryError:
        pos = self.pos if pos is None else pos
        line, col = line_col(self.text, pos)
        rest = self.text[pos:].split("\n", 1)[0].strip()
        found = f"'{rest[:20]}'" if rest else "end of query"
        return QueryError(f"line {line}, column {col}: expected {expected}, found {found}")

    def ws(self) -> None:
        start = self.pos
        m = _WS.match(self.text, start)  # (it always matches, if only the empty string)
        self.pos = m.end() if m else start
        if self.pos != start:
            self.last_ws = (start, self.pos)

    def source_text(self, start: int) -> str:
        """The text from ``start`` to the end of the last token (no trailing comment)."""
        end = self.last_ws[0] if self.last_ws[1] == self.pos else self.pos
        return self.text[start:end].strip()

    def at_end(self) -> bool:
        self.ws()
        return self.pos >= len(self.text)

    def peek_kw(self, word: str) -> bool:
        self.ws()
        return bool(_KW[word].match(self.text, self.pos))

    def take_kw(self, word: str) -> bool:
        self.ws()
        m = _KW[word].match(self.text, self.pos)
        if m:
            self.pos = m.end()
            return True
        return False

    def expect_kw(self, word: str) -> None:
        if not self.take_kw(word):
            raise self.error(word.upper())

    def peek(self, s: str) -> bool:
        self.ws()
        return self.text.startswith(s, self.pos)

    def take(self, s: str) -> bool:
        if self.peek(s):
            self.pos += len(s)
            return True
        return False

    def expect(self, s: str, what: str | None = None) -> None:
        if not self.take(s):
            raise self.error(what or f"'{s}'")

    def match(self, pattern) -> re.Match[str] | None:
        self.ws()
        m = pattern.match(self.text, self.pos)
        if m:
            self.pos = m.end()
        return m

    def at_command(self) -> bool:
        return self.at_end() or any(self.peek_kw(w) for w in _COMMANDS)

    # ---- query --------------------------------------------------------------------------
    def query(self) -> ast.Query:
        if self.take_kw("list"):
            q = ast.Query("list", without_id=self.without_id())
            if not self.at_command():
                self.ws()
                start = self.pos
                e = self.expr()
                q.columns.append(ast.Column(e, self.source_text(start)))
        elif self.take_kw("table"):
            q = ast.Query("table", without_id=self.without_id())
            if not self.at_command():
                q.columns.append(self.column())
                while self.take(","):
                    q.columns.append(self.column())
        elif self.take_kw("task"):
            q = ast.Query("task")
        elif self.peek_kw("calendar"):
            line, col = line_col(self.text, self.pos)
            raise QueryError(
                f"line {line}, column {col}: CALENDAR queries are not supported "
                "(they need Obsidian's calendar view); use LIST or TABLE"
            )
        else:
            raise self.error("a query type (LIST, TABLE or TASK)")
        while not self.at_end():
            q.commands.append(self.command(q))
        return q

    def without_id(self) -> bool:
        if self.take_kw("without"):
            self.expect_kw("id")
            return True
        return False

    def column(self) -> ast.Column:
        self.ws()
        start = self.pos
        e = self.expr()
        name = self.source_text(start)
        if self.take_kw("as"):
            name = self.name()
        return ast.Column(e, name)

    def name(self) -> str:
        self.ws()
        if self.peek('"'):
            return self.string()
        m = self.match(_IDENT)
        if not m:
            raise self.error("a name after AS")
        return m.group()

    def command(self, q: ast.Query):
        self.ws()
        if self.take_kw("from"):
            if q.source is not None:
                raise self.error("only one FROM", self.pos - 4)
            q.source = self.source()
            return _FromMarker()
        if self.take_kw("where"):
            return ast.Where(self.expr())
        if self.take_kw("sort"):
            keys = [self.sort_key()]
            while self.take(","):
                keys.append(self.sort_key())
            return ast.Sort(keys)
        if self.take_kw("group"):
            self.expect_kw("by")
            e = self.expr()
            return ast.GroupBy(e, self.name() if self.take_kw("as") else "key")
        if self.take_kw("flatten"):
            self.ws()
            start = self.pos
            e = self.expr()
            name = ast.expr_key(e) or self.source_text(start)
            return ast.Flatten(e, self.name() if self.take_kw("as") else name)
        if self.take_kw("limit"):
            return ast.Limit(self.expr())
        raise self.error("FROM, WHERE, SORT, GROUP BY, FLATTEN or LIMIT")

    def sort_key(self) -> ast.SortKeySpec:
        e = self.expr()
        if self.take_kw("descending") or self.take_kw("desc"):
            return ast.SortKeySpec(e, True)
        self.take_kw("ascending") or self.take_kw("asc")
        return ast.SortKeySpec(e, False)

    # ---- FROM sources -------------------------------------------------------------------
    def source(self) -> ast.Source:
        left = self.source_and()
        while self.take_kw("or") or self.take("|"):
            left = ast.OrSource(left, self.source_and())
        return left

    def source_and(self) -> ast.Source:
        left = self.source_not()
        while self.take_kw("and") or self.take("&"):
            left = ast.AndSource(left, self.source_not())
        return left

    def source_not(self) -> ast.Source:
        if self.take("-") or (self.peek("!") and not self.peek("![[") and self.take("!")):
            return ast.NotSource(self.nested(self.source_not))
        return self.source_atom()

    def source_atom(self) -> ast.Source:
        self.ws()
        if self.take("("):
            inner = self.nested(self.source)
            self.expect(")")
            return inner
        m = self.match(_TAG)
        if m:
            return ast.TagSource(m.group()[1:])
        if self.peek('"'):
            return ast.FolderSource(self.string())
        if self.peek("[["):
            return ast.LinkSource(self.link_literal().target)
        if self.peek_kw("csv") and regex.match(r"csv\s*\(", self.text[self.pos : self.pos + 40], regex.I):
            self.take_kw("csv")
            self.expect("(")
            path = self.string()
            self.expect(")")
            return ast.CsvSource(path)
        if self.take_kw("outgoing"):
            self.expect("(")
            target = self.link_literal().target
            self.expect(")")
            return ast.LinkSource(target, outgoing=True)
        raise self.error('a source (#tag, "folder", [[note]], outgoing([[note]]) or csv("file.csv"))')

    # ---- expressions --------------------------------------------------------------------
    def nested(self, fn: Callable):
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self.error("less deeply nested query")
        try:
            return fn()
        finally:
            self.depth -= 1

    def expr(self) -> ast.Expr:
        return self.nested(self.or_expr)

    def or_expr(self) -> ast.Expr:
        left = self.and_expr()
        while True:
            pos = self.pos
            if self.take_kw("or") or self.take("|"):
                left = ast.Binary("or", left, self.and_expr(), pos=pos)
            else:
                return left

    def and_expr(self) -> ast.Expr:
        left = self.compare_expr()
        while True:
            pos = self.pos
            if self.take_kw("and") or self.take("&"):
                left = ast.Binary("and", left, self.compare_expr(), pos=pos)
            else:
                return left

    def compare_expr(self) -> ast.Expr:
        left = self.add_expr()
        while True:
            self.ws()
            pos = self.pos
            for op in _COMPARE_OPS:
                if self.text.startswith(op, self.pos) and not self.text.startswith("=>", self.pos):
                    self.pos += len(op)
                    left = ast.Binary("=" if op == "==" else op, left, self.add_expr(), pos=pos)
                    break
            else:
                return left

    def add_expr(self) -> ast.Expr:
        left = self.mul_expr()
        while True:
            self.ws()
            pos = self.pos
            ch = self.text[self.pos : self.pos + 1]
            if ch in ("+", "-") and ch:
                self.pos += 1
                left = ast.Binary(ch, left, self.mul_expr(), pos=pos)
            else:
                return left

    def mul_expr(self) -> ast.Expr:
        left = self.unary_expr()
        while True:
            self.ws()
            pos = self.pos
            ch = self.text[self.pos : self.pos + 1]
            if ch in ("*", "/", "%") and ch and not self.text.startswith("//", self.pos):
                self.pos += 1
                left = ast.Binary(ch, left, self.unary_expr(), pos=pos)
            else:
                return left

    def unary_expr(self) -> ast.Expr:
        self.ws()
        pos = self.pos
        if self.take("-"):
            return ast.Unary("-", self.nested(self.unary_expr), pos=pos)
        if self.peek("!") and not self.peek("![[") and not self.peek("!="):
            self.pos += 1
            return ast.Unary("!", self.nested(self.unary_expr), pos=pos)
        return self.postfix_expr()

    def postfix_expr(self) -> ast.Expr:
        e = self.atom()
        while True:
            self.last_end = self.pos
            # no whitespace skipping before '.', '[' or '(' would make "a (b)" a call; Dataview
            # accepts both, so we skip it too, except before '[' (a new list literal is not valid
            # here anyway)
            self.ws()
            pos = self.pos
            if self.take("."):
                m = self.match(_IDENT)
                if not m:
                    raise self.error("a field name after '.'")
                e = ast.Dot(e, m.group(), pos=pos)
            elif self.text.startswith("[", self.pos) and not self.text.startswith("[[", self.pos):
                self.pos += 1
                idx = self.expr()
                self.expect("]")
                e = ast.Index(e, idx, pos=pos)
            elif self.text.startswith("(", self.pos) and (
                isinstance(e, (ast.Variable, ast.Dot, ast.LambdaExpr))
                # f(1)(2), m["f"](x): a call on a result only when the "(" touches it
                or (isinstance(e, (ast.Call, ast.Index)) and self.pos == self.last_end)
            ):
                self.pos += 1
                e = ast.Call(e, self.args(), pos=pos)
                self.last_end = self.pos
            else:
                return e

    def args(self) -> list[ast.Expr]:
        args: list[ast.Expr] = []
        if self.take(")"):
            return args
        args.append(self.expr())
        while self.take(","):
            args.append(self.expr())
        self.expect(")", "',' or ')'")
        return args

    def atom(self) -> ast.Expr:
        self.ws()
        pos = self.pos
        text = self.text
        if pos >= len(text):
            raise self.error("an expression")
        ch = text[pos]
        if "0" <= ch <= "9":
            m = self.match(_NUMBER)
            if m is None:  # (a digit always starts a number)
                raise self.error("a number")
            s = m.group()
            # JavaScript numbers are doubles: a long integer literal is one too
            value = float(s) if any(c in s for c in ".eE") or len(s) > 15 else int(s)
            return ast.Literal(value, pos=pos)
        if ch in "\"'":
            return ast.Literal(self.string(), pos=pos)
        if text.startswith("[[", pos) or text.startswith("![[", pos):
            return self.link_literal()
        if ch == "[":
            self.pos += 1
            items = []
            if not self.take("]"):
                items.append(self.expr())
                while self.take(","):
                    items.append(self.expr())
                self.expect("]", "',' or ']'")
            return ast.ListExpr(items, pos=pos)
        if ch == "{":
            self.pos += 1
            pairs: list[tuple[str, ast.Expr]] = []
            if not self.take("}"):
                pairs.append(self.object_pair())
                while self.take(","):
                    pairs.append(self.object_pair())
                self.expect("}", "',' or '}'")
            return ast.ObjectExpr(pairs, pos=pos)
        if ch == "(":
            m = _LAMBDA_HEAD.match(text, pos)
            if m:
                self.pos = m.end()
                params = [p.strip() for p in (m.group(1) or "").split(",") if p.strip()]
                return ast.LambdaExpr(params, self.expr(), pos=pos)
            self.pos += 1
            e = self.expr()
            self.expect(")", "')'")
            return e
        m = _IDENT.match(text, pos)
        if m:
            word = m.group()
            low = word.lower()
            if low in ("true", "false"):
                self.pos = m.end()
                return ast.Literal(low == "true", pos=pos)
            if low == "null":
                self.pos = m.end()
                return ast.Literal(None, pos=pos)
            if low in ("date", "dur"):
                lit = self.special_literal(low, m.end())
                if lit is not None:
                    return lit
            self.pos = m.end()
            return ast.Variable(word, pos=pos)
        raise self.error("an expression")

    def special_literal(self, kind: str, after: int) -> ast.Expr | None:
        """``date(2023-07-18)``, ``date(today)``, ``dur(2 days)`` written without quotes."""
        m = re.compile(r"\s*\(").match(self.text, after)
        if not m:
            return None
        # the text up to ")" (found with find: a regex would backtrack over long spaces)
        close = self.text.find(")", m.end(), m.end() + MAX_DURATION_CHARS + 1)
        raw = self.text[m.end() : close] if close >= 0 else ""
        if close < 0 or '"' in raw or "(" in raw or "'" in raw:
            return None
        word = raw.strip()
        value: _dt.datetime | Duration | None
        if kind == "date":
            if re.fullmatch(r"\d{4}-\d{2}(-\d{2})?(T[\d:.]+(Z|[+-][\d:]+)?(\[[\w/+-]+\])?)?", word):
                value = parse_date(word)
                if value is None:
                    raise self.error("a valid date", m.end())
            elif word.lower() in ("today", "now", "tomorrow", "yesterday", "sow", "eow", "som", "eom", "soy", "eoy"):
                # relative dates are computed when the query runs, not when it is parsed
                e = ast.Call(ast.Variable("date"), [ast.Literal(word.lower())], pos=self.pos)
                self.pos = close + 1
                return e
            else:
                return None
        else:
            value = parse_duration(word) if word else None
            if value is None:
                return None
        pos = self.pos
        self.pos = close + 1
        return ast.Literal(value, pos=pos)

    def object_pair(self) -> tuple[str, ast.Expr]:
        self.ws()
        if self.peek('"') or self.peek("'"):
            key = self.string()
        else:
            m = self.match(_IDENT)
            if not m:
                raise self.error("an object key")
            key = m.group()
        self.expect(":", "':'")
        return key, self.expr()

    def string(self) -> str:
        self.ws()
        quote = self.text[self.pos : self.pos + 1]
        if quote not in ("'", '"'):
            raise self.error("a string")
        start = self.pos
        i = self.pos + 1
        out = []
        text = self.text
        while i < len(text):
            c = text[i]
            if c == "\\" and i + 1 < len(text):
                nxt = text[i + 1]
                out.append({"n": "\n", "t": "\t", "r": "\r"}.get(nxt, nxt if nxt in "\"'\\" else "\\" + nxt))
                i += 2
                continue
            if c == quote:
                self.pos = i + 1
                return "".join(out)
            out.append(c)
            i += 1
        raise self.error(f"a closing {quote} for the string", start)

    def link_literal(self) -> ast.LinkExpr:
        self.ws()
        pos = self.pos
        embed = self.take("!")
        if not self.take("[["):
            raise self.error("a link [[...]]")
        end = self.text.find("]]", self.pos)
        if end < 0 or "\n" in self.text[self.pos : end]:
            raise self.error("']]' closing the link", pos)
        inner = self.text[self.pos : end]
        self.pos = end + 2
        link = link_from_text(inner, embed=embed)
        return ast.LinkExpr(link.path, link.display, link.subpath, embed, link.type, pos=pos)


class _FromMarker:
    """Placeholder left in the command list where FROM stood (FROM always applies first)."""


def parse_query(text: str) -> ast.Query:
    """Parse a DQL query; raises :class:`QueryError` with line and column on bad input."""
    if not isinstance(text, str):
        raise QueryError("a query must be text")
    p = Parser(text)
    try:
        q = p.query()
    except RecursionError:
        raise QueryError("query nested too deeply") from None
    q.commands = [c for c in q.commands if not isinstance(c, _FromMarker)]
    return q


def parse_expression(text: str) -> ast.Expr:
    """Parse one expression (used by tests and by ``paperkb query --expr``)."""
    p = Parser(text)
    try:
        e = p.expr()
    except RecursionError:
        raise QueryError("expression nested too deeply") from None
    if not p.at_end():
        raise p.error("end of expression")
    return e
