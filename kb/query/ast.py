"""The syntax tree of a Dataview query (DQL): sources, expressions and commands.

The node classes behave as dataclasses (positional and keyword fields, defaults, ``==``
on their fields, the same ``repr``) but are made by :func:`dataclass` below, which builds
their methods from closures: the standard decorator compiles source text for every class,
~0.5 ms each, and this module is imported by every ``paperkb query``.
"""

from __future__ import annotations

from typing import Any, TypeVar, dataclass_transform

_MISSING: Any = object()


class _Field:
    __slots__ = ("name", "default", "default_factory", "compare", "kw_only")

    def __init__(
        self, default: Any = _MISSING, *, default_factory: Any = _MISSING, compare: bool = True, kw_only: bool = False
    ) -> None:
        self.name = ""
        self.default = default
        self.default_factory = default_factory
        self.compare = compare
        self.kw_only = kw_only


def field(
    *, default: Any = _MISSING, default_factory: Any = _MISSING, compare: bool = True, kw_only: bool = False
) -> Any:
    """Like ``dataclasses.field`` (``default``, ``default_factory``, ``compare``, ``kw_only``)."""
    return _Field(default, default_factory=default_factory, compare=compare, kw_only=kw_only)


_T = TypeVar("_T")


@dataclass_transform(field_specifiers=(field,))  # type checkers read the classes as dataclasses
def dataclass(cls: type[_T]) -> type[_T]:
    """Give ``cls`` a dataclass's ``__init__``, ``__eq__`` and ``__repr__`` (fields of
    base classes first, keyword-only ones after the others in ``__init__``)."""
    found: dict[str, _Field] = dict(getattr(cls, "__node_fields__", {}))
    for name in cls.__dict__.get("__annotations__", {}):
        value = cls.__dict__.get(name, _MISSING)
        f = value if isinstance(value, _Field) else _Field(value)
        f.name = name
        found.pop(name, None)
        found[name] = f
        if isinstance(value, _Field):
            if f.default is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, f.default)
    fields = list(found.values())
    order = [f for f in fields if not f.kw_only] + [f for f in fields if f.kw_only]
    positional = [f for f in fields if not f.kw_only]
    names = tuple(f.name for f in fields)
    compared = tuple(f.name for f in fields if f.compare)
    qualname = cls.__qualname__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(positional):
            raise TypeError(f"{qualname}() takes {len(positional)} positional arguments but {len(args)} were given")
        values = self.__dict__
        for i, f in enumerate(order):
            if i < len(args) and not f.kw_only:
                if f.name in kwargs:
                    raise TypeError(f"{qualname}() got multiple values for argument {f.name!r}")
                values[f.name] = args[i]
            elif f.name in kwargs:
                values[f.name] = kwargs.pop(f.name)
            elif f.default is not _MISSING:
                values[f.name] = f.default
            elif f.default_factory is not _MISSING:
                values[f.name] = f.default_factory()
            else:
                raise TypeError(f"{qualname}() missing required argument: {f.name!r}")
        if kwargs:
            raise TypeError(f"{qualname}() got an unexpected keyword argument {next(iter(kwargs))!r}")

    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in compared)

    def __repr__(self: Any) -> str:
        return f"{type(self).__qualname__}(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in names) + ")"

    cls.__init__ = __init__  # type: ignore[misc,method-assign]
    cls.__eq__ = __eq__  # type: ignore[method-assign]
    cls.__repr__ = __repr__  # type: ignore[method-assign]
    cls.__hash__ = None  # type: ignore[assignment]  # mutable and compared by value, as a dataclass
    cls.__match_args__ = tuple(f.name for f in positional)  # type: ignore[attr-defined,misc]
    cls.__node_fields__ = found  # type: ignore[attr-defined]
    return cls


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
