"""paperkb's knowledge base: parse an Obsidian vault of paper notes, index it, graph it."""

__version__ = "0.1.0"
