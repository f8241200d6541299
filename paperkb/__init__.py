"""paperkb's shared floor: the version and the error type every layer (kb, repro, cli) raises.

Nothing here imports kb, repro or cli, so each of them may import it.
"""

from __future__ import annotations

__version__ = "0.1.0"
