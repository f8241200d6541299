"""Writing small vaults for the kb tests."""

from __future__ import annotations

from vaultkit import write as write  # re-exported: the kb tests import it from here
