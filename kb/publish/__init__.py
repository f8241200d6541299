"""Publishing the vault for people and other tools: reading summaries, a static site,
plain Markdown, BibTeX / CSL-JSON and pictures of the citation graph.

Kept in a package of its own (not ``kb/*.py``) because ``kb.index`` fingerprints the
modules beside it to decide when the index must be rebuilt, and nothing here shapes it.
Nothing here imports ``repro``: claim statuses and the runs folder are passed in.
"""
