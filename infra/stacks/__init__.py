"""Stacks compose constructs; they hold no resource logic of their own."""
