"""Rotary position embedding (RoFormer, Su et al. 2021) and paperkb experiments that check it."""

__version__ = "0.1.0"
