"""``paperkb status --write-notes``: each claim's status written into its own note.

The status words come from :func:`repro.status.claim_statuses` (the same as ``paperkb
status`` prints); :mod:`kb.writeback` puts them into the claim callouts as the managed
inline field ``status::``, byte for byte safe (see there).
"""

from __future__ import annotations

from typing import Any

from kb.writeback import WriteReport, field_value, write_status_fields
from repro.status import claim_statuses, vault_claims


def write_status_notes(vault: Any, *, remove: bool = False) -> WriteReport:
    """Write (or with ``remove``, take out) the ``status::`` field of every claim callout of
    ``vault`` (a ``kb.vault.Vault``). The index is brought up to date first, so a note
    edited after that moment is left alone and reported."""
    vault.refresh_index()
    if remove:
        return write_status_fields(vault, None, remove=True)
    claims = [c for c in vault_claims(vault) if c.line]
    statuses = claim_statuses(vault.root, claims)
    values = {(c.note, c.id): field_value(statuses[c.id]) for c in claims if c.id in statuses}
    return write_status_fields(vault, values)
