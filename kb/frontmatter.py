"""Note properties: the YAML (or JSON) block between ``---`` lines at the top of a note.

Obsidian property types map onto YAML like this: text -> str, list -> list, number ->
int/float, checkbox -> bool, date -> ``2023-07-18`` (a ``datetime.date``), date & time ->
``2023-07-18T10:30:00`` (a ``datetime.datetime``; without seconds it stays text). A
``---``/``{...}``/``---`` block is read as JSON, which Obsidian accepts as well.

Values are loaded with the safe loader only (no Python tags) and copied into plain JSON
data with a budget, so an alias bomb or a recursive alias cannot blow up memory.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from typing import Any

from kb.text import Issue

MAX_NODES = 50_000  # values copied out of one frontmatter block
MAX_CHARS = 1_000_000

_FENCE_RE = re.compile(r"---[ \t]*(?:\n|$)")


class _TooBig(Exception):
    pass


def split_frontmatter(text: str) -> tuple[str | None, int, int]:
    """``(raw, body_line, body_offset)``: the raw frontmatter text (None if there is none),
    the 0-based line where the body starts and its offset in ``text``. Obsidian only knows
    frontmatter whose first line is exactly ``---`` and that a later ``---`` line closes."""
    if not _FENCE_RE.match(text):
        return None, 0, 0
    start = text.find("\n") + 1
    if start == 0:
        return None, 0, 0
    pos = start
    while True:
        end = text.find("\n", pos)
        line = text[pos:] if end < 0 else text[pos:end]
        if line.rstrip(" \t") == "---":
            raw = text[start:pos]
            return raw, raw.count("\n") + 2, len(text) if end < 0 else end + 1
        if end < 0:
            return None, 0, 0
        pos = end + 1


def load_frontmatter(raw: str, first_line: int = 2) -> tuple[dict[str, Any], str, list[Issue]]:
    """Parse the raw block; ``first_line`` is the 1-based file line of its first line.

    Returns ``(properties, format, issues)`` where format is "yaml" or "json"; a block that
    does not parse gives ``{}`` and an error naming the file line.
    """
    stripped = raw.strip()
    if not stripped:
        return {}, "yaml", []
    if len(raw) > MAX_CHARS:
        return {}, "yaml", [(first_line, "error", f"frontmatter too large ({len(raw)} characters), not read")]
    if stripped.startswith("{"):
        try:
            value = json.loads(stripped)
        except ValueError:
            value = None  # not JSON after all: YAML's flow mappings look the same
        else:
            return _as_mapping(value, "json", first_line)
    import yaml  # imported here: `import kb.parse` stays cheap for commands that never parse

    loader = _loader_class()(raw)
    try:
        value = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = first_line + (mark.line if mark is not None else 0)
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return {}, "yaml", [(line, "error", f"invalid YAML frontmatter: {what}")]
    except RecursionError:
        return {}, "yaml", [(first_line, "error", "invalid YAML frontmatter: nested too deeply")]
    except Exception as exc:  # any loader bug must not stop the parse
        return {}, "yaml", [(first_line, "error", f"invalid YAML frontmatter: {type(exc).__name__}")]
    finally:
        loader.dispose()
    props, fmt, issues = _as_mapping(value, "yaml", first_line)
    issues.extend(
        (first_line + line, "warning", f"duplicate property {key!r}: the last value is used")
        for line, key in loader.duplicates[:MAX_DUPLICATE_WARNINGS]
    )
    return props, fmt, issues


MAX_DUPLICATE_WARNINGS = 10
_LOADER: type | None = None


def _loader_class() -> type:
    """The safe loader (libyaml's C parser when PyYAML has it: several times faster),
    noting keys written twice in one mapping: YAML forbids them, PyYAML silently keeps
    the last one, and Obsidian shows only one."""
    global _LOADER
    if _LOADER is None:
        import yaml

        base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

        class Loader(base):  # type: ignore[misc, valid-type]
            def __init__(self, stream: str) -> None:
                super().__init__(stream)
                self.duplicates: list[tuple[int, str]] = []

            def construct_mapping(self, node: Any, deep: bool = False) -> Any:  # PyYAML's signature
                if isinstance(node, yaml.MappingNode):
                    seen: set[str] = set()
                    for key_node, _ in node.value:
                        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                            if key_node.value in seen:
                                self.duplicates.append((key_node.start_mark.line, key_node.value))
                            seen.add(key_node.value)
                return super().construct_mapping(node, deep=deep)

        _LOADER = Loader
    return _LOADER


def _as_mapping(value: Any, fmt: str, first_line: int) -> tuple[dict[str, Any], str, list[Issue]]:
    if value is None:
        return {}, fmt, []
    if not isinstance(value, dict):
        kind = type(value).__name__
        return {}, fmt, [(first_line, "error", f"frontmatter is a {kind}, not a set of properties")]
    try:
        return plain(value, [0], ()), fmt, []
    except _TooBig:
        return {}, fmt, [(first_line, "error", f"frontmatter too large or recursive (over {MAX_NODES} values)")]


def plain(value: Any, budget: list[int], seen: tuple[int, ...]) -> Any:
    """A JSON-safe copy of a loaded YAML value (dates as ISO strings)."""
    budget[0] += 1
    if budget[0] > MAX_NODES:
        raise _TooBig
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, (dict, list, tuple, set)):
        if id(value) in seen:
            raise _TooBig
        inner = seen + (id(value),)
        if isinstance(value, dict):
            return {str(k): plain(v, budget, inner) for k, v in value.items()}
        return [plain(v, budget, inner) for v in value]
    if isinstance(value, (_dt.date, _dt.datetime, _dt.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class Properties:
    """Case-insensitive look-up of properties (``DOI``, ``doi`` and ``Doi`` are one key)."""

    def __init__(self, props: dict[str, Any]) -> None:
        self.props = props
        self.lowered: dict[str, str] = {}
        for k in props:
            self.lowered.setdefault(k.lower(), k)

    def get(self, *names: str) -> Any:
        """The value of the first property named one of ``names`` (exact case first)."""
        props = self.props
        for name in names:
            if name in props:
                return props[name]
        for name in names:
            key = self.lowered.get(name.lower())
            if key is not None:
                return props[key]
        return None


def get_key(props: dict[str, Any], *names: str) -> Any:
    """The value of the first property whose name matches one of ``names``, any case."""
    return Properties(props).get(*names)


def key_line(raw: str, key: str, first_line: int) -> int:
    """Best-effort file line of a top-level ``key:`` in the raw block."""
    m = re.search(rf"^[\"']?{re.escape(key)}[\"']?\s*:", raw, re.M | re.I)
    return first_line + (raw.count("\n", 0, m.start()) if m else 0)
