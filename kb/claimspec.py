"""A claim's own parameters and expectations, written as data under its ``experiment::`` line.

::

    > [!claim] BERT-base has about 110M parameters.
    > experiment:: transformer/param-count
    > params:: d_model=768, encoder_layers=12, decoder_layers=0, n_heads=12, d_ff=3072, vocab_size=30522
    > expect:: params_millions ≈ 110 ± 2%
    > needs:: the WMT14 data          (optional: why nothing here can decide the claim)

``params::`` is a comma-separated list of ``name=value``; a value is an integer, a number,
``true``/``false``, a quoted string, a bracketed list ``[a, b]`` or a bare word. ``expect::``
is one or more ``metric OP number`` separated by ``;`` with OP one of ``<  <=  >  >=  ==``
or ``≈`` (also ``~=``) followed by a tolerance ``± 2%`` or ``± 0.5`` (``+-`` works too).

Nothing here evaluates code: both are read by two small regular expressions on text of
bounded length. A bad entry is an error with the note's line, and the claim reads ``error``
(:func:`spec_errors`): nothing malformed in a note is dropped to leave a verdict on the rest.
A claim that sets ``params::`` is judged on its ``expect::`` only, so ``params::`` without
``expect::`` is an error too.
"""

from __future__ import annotations

import math
import re
from typing import Any

MAX_FIELD_CHARS = 2000  # a params:: or expect:: value longer than this is refused
MAX_ENTRIES = 64

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}\Z")
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_EXPECT_RE = re.compile(
    rf"\s*(?P<metric>[A-Za-z_][A-Za-z0-9_.\-]{{0,63}})\s*(?P<op><=|>=|==|~=|≈|≃|<|>|~)\s*(?P<value>{_NUMBER})"
    rf"\s*(?:(?:±|\+-|\+/-)\s*(?P<tol>{_NUMBER})\s*(?P<pct>%)?)?\s*\Z"
)
_APPROX = ("≈", "~=", "≃", "~")


class ClaimSpecError(ValueError):
    """A ``params::`` or ``expect::`` value that does not follow the syntax."""


PARAMS_WITHOUT_EXPECT = "params:: given but no expect:: to judge them"


def spec_errors(claim: Any) -> list[str]:
    """What is wrong with a claim's own fields, whatever experiment it names: a line that did
    not parse (``claim.spec_errors``, kept by the parser), or ``params::`` with no ``expect::``
    (the experiment's own checks judge its default configuration, not the claim's)."""
    errors = list(getattr(claim, "spec_errors", None) or [])
    if getattr(claim, "params", None) and not getattr(claim, "expect", None):
        errors.append(PARAMS_WITHOUT_EXPECT)
    return errors


def _split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside brackets and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth = max(0, depth - 1)
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


MAX_NESTING = 8  # lists in lists in a params:: value (no experiment takes more than two)


def parse_value(text: str, depth: int = 0) -> Any:
    """A literal: int, float, bool, quoted string, [list] or bare string (never code)."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    if text.startswith("[") and text.endswith("]"):
        if depth >= MAX_NESTING:
            raise ClaimSpecError(f"params:: nests lists more than {MAX_NESTING} deep")
        return [parse_value(x, depth + 1) for x in _split_top_level(text[1:-1])]
    low = text.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if re.fullmatch(r"[+-]?\d{1,30}", text):
        return int(text)
    if re.fullmatch(_NUMBER, text):
        value = float(text)
        if math.isfinite(value):
            return value
    return text


def parse_params(text: str) -> dict[str, Any]:
    """``"d_model=768, sizes=[7B, 13B]"`` -> ``{"d_model": 768, "sizes": ["7B", "13B"]}``."""
    if len(text) > MAX_FIELD_CHARS:
        raise ClaimSpecError(f"params:: is longer than {MAX_FIELD_CHARS} characters")
    out: dict[str, Any] = {}
    items = _split_top_level(text)
    if len(items) > MAX_ENTRIES:
        raise ClaimSpecError(f"params:: has more than {MAX_ENTRIES} entries")
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not _NAME_RE.match(name) or not value.strip():
            raise ClaimSpecError(f"params:: expects name=value, got {item!r}")
        if name in out:
            raise ClaimSpecError(f"params:: sets {name!r} twice")
        out[name] = parse_value(value)
    return out


def parse_expect(text: str) -> list[dict[str, Any]]:
    """``"params_millions ≈ 110 ± 2%"`` -> ``[{"metric", "op", "value", "tolerance", "relative", "text"}]``."""
    if len(text) > MAX_FIELD_CHARS:
        raise ClaimSpecError(f"expect:: is longer than {MAX_FIELD_CHARS} characters")
    out = []
    items = [x.strip() for x in text.split(";") if x.strip()]
    if len(items) > MAX_ENTRIES:
        raise ClaimSpecError(f"expect:: has more than {MAX_ENTRIES} entries")
    for item in items:
        m = _EXPECT_RE.match(item)
        if m is None:
            raise ClaimSpecError(
                f"expect:: expects 'metric OP number' (OP: < <= > >= == or ≈ with ± tolerance), got {item!r}"
            )
        op = m["op"]
        tol = m["tol"]
        if op in _APPROX:
            if tol is None:
                raise ClaimSpecError(f"expect:: {item!r}: ≈ needs a tolerance, e.g. '± 2%'")
            op = "≈"
        elif tol is not None:
            raise ClaimSpecError(f"expect:: {item!r}: a ± tolerance goes with ≈ only")
        value = float(m["value"])
        tolerance = abs(float(tol)) if tol is not None else None
        if not math.isfinite(value) or (tolerance is not None and not math.isfinite(tolerance)):
            raise ClaimSpecError(f"expect:: {item!r}: numbers must be finite")
        out.append(
            {
                "metric": m["metric"],
                "op": op,
                "value": value,
                "tolerance": tolerance,
                "relative": bool(m["pct"]),
                "text": item,
            }
        )
    return out


def expectation_threshold(e: dict[str, Any]) -> tuple[str, Any]:
    """The (op, threshold) of a registry check for one parsed expectation."""
    if e["op"] == "≈":
        tol = abs(e["value"]) * e["tolerance"] / 100.0 if e["relative"] else e["tolerance"]
        return "between", (e["value"] - tol, e["value"] + tol)
    return e["op"], e["value"]


def canonical(value: Any) -> Any:
    """A comparable form of a parameter value: numbers as floats, lists item by item, the
    rest as text (so ``768`` from a note equals ``768`` recorded by a run)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    return str(value)


def canonical_params(params: dict[str, Any] | None) -> dict[str, Any]:
    return {str(k): canonical(v) for k, v in sorted((params or {}).items())}
