"""Serendip package."""
