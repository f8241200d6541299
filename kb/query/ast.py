"""The syntax tree of a Dataview query (DQL): sources, expressions and commands."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# ---- expressions ------------------------------------------------------------------------


@dataclass
class Expr:
    pos: int = field(default=0, kw_only=True, compare=False)


@dataclass
class Literal(Expr):
    value: Any


@dataclass
class Variable(Expr):
    name: str  # a field of the row ("file", "rating", "this", "rows" ...)


@dataclass
class Dot(Expr):
    obj: Expr
    name: str


@dataclass
class Index(Expr):
    obj: Expr
    index: Expr


@dataclass
class Call(Expr):
    func: Expr  # usually Variable(name) of a built-in function
    args: list[Expr]


@dataclass
class Binary(Expr):
    op: str  # + - * / % = != < <= > >= and or
    left: Expr
    right: Expr


@dataclass
class Unary(Expr):
    op: str  # "-" | "!"
    operand: Expr


@dataclass
class ListExpr(Expr):
    items: list[Expr]


@dataclass
class ObjectExpr(Expr):
    items: list[tuple[str, Expr]]


@dataclass
class LinkExpr(Expr):
    """``[[target#sub|display]]``; ``[[]]`` (empty target) means the current note."""

    target: str
    display: str | None = None
    subpath: str | None = None
    embed: bool = False
    type: str = "file"


@dataclass
class LambdaExpr(Expr):
    params: list[str]
    body: Expr


def expr_key(e: Expr) -> str | None:
    """The dotted name of a plain field path (``file.tags``), else None."""
    if isinstance(e, Variable):
        return e.name
    if isinstance(e, Dot):
        base = expr_key(e.obj)
        return None if base is None else f"{base}.{e.name}"
    return None


# ---- sources (FROM) ---------------------------------------------------------------------


@dataclass
class Source:
    pass


@dataclass
class TagSource(Source):
    tag: str  # without '#'


@dataclass
class FolderSource(Source):
    path: str  # a folder or "folder/Note" (with or without .md)


@dataclass
class LinkSource(Source):
    target: str  # notes linking to it; "" = the current note
    outgoing: bool = False  # outgoing([[x]]): the notes x links to


@dataclass
class CsvSource(Source):
    path: str  # a CSV file inside the vault; its rows are the pages


@dataclass
class AndSource(Source):
    left: Source
    right: Source


@dataclass
class OrSource(Source):
    left: Source
    right: Source


@dataclass
class NotSource(Source):
    inner: Source


# ---- commands and the query ---------------------------------------------------------------


@dataclass
class Where:
    expr: Expr


@dataclass
class SortKeySpec:
    expr: Expr
    descending: bool = False


@dataclass
class Sort:
    keys: list[SortKeySpec]


@dataclass
class GroupBy:
    expr: Expr
    name: str


@dataclass
class Flatten:
    expr: Expr
    name: str


@dataclass
class Limit:
    expr: Expr


@dataclass
class Column:
    expr: Expr
    name: str  # header: the AS name or the expression's source text


@dataclass
class Query:
    type: str  # "list" | "table" | "task"
    without_id: bool = False
    columns: list[Column] = field(default_factory=list)  # TABLE columns, or LIST's one value
    source: Source | None = None
    commands: list[Any] = field(default_factory=list)
