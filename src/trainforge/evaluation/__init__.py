"""Evaluation of a tuned model against its base on the same held-out data.

``gate.py`` has no torch (the state machine's gate and the Lambdas read reports); the scoring modules
need the ``train`` extra.
"""
