"""Imported notes from a template: the vault's ``.paperkb/templates/paper.md`` when there
is one, else paperkb's default (the seed note's layout, ``note_templates/paper.md``).

Templates are Jinja2 run in Jinja's *immutable sandbox*: a template (like the notes and
the Zotero data it is filled with) is untrusted, so it can read the variables it is given
and nothing else: no attribute starting with ``_``, no method that changes a value, no
import. Its work is bounded: ``range`` stops after ``MAX_STEPS`` steps in all, the output
after ``MAX_OUTPUT`` characters or ``MAX_SECONDS`` seconds. The rendered frontmatter must
be valid YAML, else the note is not written. docs/templates.md lists the variables.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paperkb.errors import PaperkbError

TEMPLATE_PATH = ".paperkb/templates/paper.md"
DEFAULT_TEMPLATE = Path(__file__).with_name("note_templates") / "paper.md"
MAX_STEPS = 100_000
MAX_OUTPUT = 2_000_000
MAX_SECONDS = 5.0
MAX_TEMPLATE = 200_000  # characters of template source


class TemplateError(PaperkbError):
    """A template that does not load or render: one line naming the file and line."""


@dataclass
class NoteTemplate:
    source: str
    name: str  # shown in errors: the template's path

    @classmethod
    def for_vault(cls, root: Path | None) -> NoteTemplate:
        """The vault's own template if it has one, else the default."""
        if root is not None:
            path = Path(root) / TEMPLATE_PATH
            if path.is_symlink():
                raise TemplateError(f"{TEMPLATE_PATH}: is a symlink; paperkb reads only a plain file there")
            if path.is_file():
                try:
                    data = path.read_bytes()[: MAX_TEMPLATE + 1]
                except OSError as exc:
                    raise TemplateError(f"{TEMPLATE_PATH}: cannot read it: {exc.strerror or exc}") from None
                if len(data) > MAX_TEMPLATE:
                    raise TemplateError(f"{TEMPLATE_PATH}: longer than {MAX_TEMPLATE} characters")
                return cls(data.decode("utf-8", "replace"), TEMPLATE_PATH)
        return cls(DEFAULT_TEMPLATE.read_text(encoding="utf-8"), "default template")

    def _compiled(self):
        import jinja2

        compiled = self.__dict__.get("_template")
        if compiled is None:
            try:
                compiled = _environment().from_string(self.source)
            except jinja2.TemplateSyntaxError as exc:
                raise TemplateError(f"{self.name}:{exc.lineno}: {exc.message}") from None
            self.__dict__["_template"] = compiled
        return compiled

    def render(self, context: dict[str, Any]) -> str:
        """The note for ``context``; a template error or a frontmatter that is not valid
        YAML raises ``TemplateError`` with the template line or the note line."""
        import jinja2

        template = self._compiled()
        budget = _Budget()
        template.globals["range"] = budget.range
        chunks: list[str] = []
        size = 0
        try:
            for chunk in template.generate(**context):
                size += len(chunk)
                budget.check()
                if size > MAX_OUTPUT:
                    raise TemplateError(f"{self.name}: the note would be longer than {MAX_OUTPUT} characters")
                chunks.append(chunk)
        except TemplateError:
            raise
        except _OverBudget as exc:
            raise TemplateError(f"{self.name}: {exc}") from None
        except jinja2.TemplateError as exc:
            raise TemplateError(f"{self.name}:{_template_line(exc)}: {exc.message or exc}") from None
        except (TypeError, ValueError, AttributeError, KeyError, IndexError, ZeroDivisionError, OverflowError) as exc:
            raise TemplateError(f"{self.name}:{_template_line(exc)}: {exc}") from None
        text = "".join(chunks)
        if not text.endswith("\n"):
            text += "\n"
        _check_frontmatter(text, self.name, context.get("citekey", ""))
        return text


class _OverBudget(Exception):
    pass


class _Budget:
    def __init__(self) -> None:
        self.steps = 0
        self.deadline = time.monotonic() + MAX_SECONDS

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise _OverBudget(f"rendering took longer than {MAX_SECONDS:g} s")

    def range(self, *args: int):
        from jinja2.sandbox import safe_range

        for value in safe_range(*args):
            self.steps += 1
            if self.steps > MAX_STEPS:
                raise _OverBudget(f"the template's loops took more than {MAX_STEPS} steps")
            if self.steps % 1000 == 0:
                self.check()
            yield value


def _template_line(exc: BaseException) -> int | str:
    """The template line of an error raised while rendering (Jinja's own frames)."""
    tb = exc.__traceback__
    line: int | str = "?"
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    lineno = getattr(exc, "lineno", None)
    return lineno if isinstance(lineno, int) else line


def _check_frontmatter(text: str, name: str, key: str) -> None:
    from kb.frontmatter import load_frontmatter, split_frontmatter

    raw, _line, _offset = split_frontmatter(text)
    if raw is None:
        return
    _props, _fmt, issues = load_frontmatter(raw)
    errors = [(line, message) for line, severity, message in issues if severity == "error"]
    if errors:
        line, message = errors[0]
        raise TemplateError(
            f"{name}: the note for {key} would have frontmatter that is not valid YAML "
            f"(note line {line}: {message}); put `| yaml` after each value"
        )


def _yaml(value: Any) -> str:
    """One YAML value on one line (flow style), quoted wherever YAML needs it."""
    import yaml

    if isinstance(value, tuple):
        value = list(value)
    if hasattr(value, "items") and not isinstance(value, dict):
        value = dict(value.items())
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's, when PyYAML has it: 10x faster
    text = yaml.dump([value], Dumper=dumper, default_flow_style=True, allow_unicode=True, width=1_000_000).strip()
    return text[1:-1]  # [value] -> value


def _oneline(value: Any) -> str:
    """Text on one line: a value cannot start a new callout, heading or property."""
    return " ".join(str(value if value is not None else "").split())


_HASHTAG_DROP = re.compile(r"[^\w/\-]+")


def _hashtag(value: Any) -> str:
    """A Zotero tag as an Obsidian tag, the way the Zotero Integration plugin writes it
    (``Computer Science - Artificial Intelligence`` -> ``#Computer-Science---Artificial-Intelligence``)."""
    text = re.sub(r"\s", "-", str(value).strip())
    text = _HASHTAG_DROP.sub("", text)
    return "#" + text if text and not text.isdigit() else ""


_LINK_SYNTAX = re.compile(r"[\[\]|#^\n\r]+")


def _linktarget(value: Any) -> str:
    """Text safe inside ``[[...]]``: no brackets, pipes, ``#`` or ``^`` to end or redirect the link."""
    return _LINK_SYNTAX.sub("", str(value if value is not None else "")).strip()


def _is_web_url(value: Any) -> bool:
    return isinstance(value, str) and re.match(r"https?://[^\s<>]+$", value) is not None


def _environment():
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(
        autoescape=False, undefined=StrictUndefined, keep_trailing_newline=True, trim_blocks=False
    )
    env.filters.update(yaml=_yaml, oneline=_oneline, hashtag=_hashtag, linktarget=_linktarget)
    env.tests["web_url"] = _is_web_url
    return env


def write_default_template(root: Path) -> tuple[Path, bool]:
    """``paperkb init --template``: copy the default template to the vault (never over a file
    that is there); ``(path, written)``."""
    path = Path(root) / TEMPLATE_PATH
    if path.is_symlink() or path.exists():
        return path, False
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "x", encoding="utf-8") as fh:
            fh.write(DEFAULT_TEMPLATE.read_text(encoding="utf-8"))
    except FileExistsError:
        return path, False
    except OSError as exc:
        raise TemplateError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path, True


__all__ = ["TEMPLATE_PATH", "DEFAULT_TEMPLATE", "NoteTemplate", "TemplateError", "write_default_template"]
