"""CSV cells a spreadsheet cannot take for formulas (CSV injection, OWASP's rule).

Excel, LibreOffice and Google Sheets run a cell that starts with ``=``, ``+``, ``-`` or
``@`` (or a tab or carriage return before one) as a formula: ``=HYPERLINK(...)`` in a
note's title would become a live link, ``=cmd|...`` worse. Such a cell gets a leading
``'``, which those tools read as "this is text" and do not show. A plain number
(``-5``, ``+1.5e3``) cannot be a formula and is left as it is.
"""

from __future__ import annotations

import re

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def spreadsheet_safe(cell: str) -> str:
    """``cell``, prefixed with ``'`` when a spreadsheet would run it as a formula."""
    if cell.startswith(_FORMULA_START) and not _NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


__all__ = ["spreadsheet_safe"]
