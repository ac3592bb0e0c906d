"""Constructs with secure defaults inside: what a stack composes."""
