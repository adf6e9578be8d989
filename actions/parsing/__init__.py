"""Internals of the safe GLM-4.5V reply parser (no eval: a small literal scanner).

Import the public names from ``actions.parse``; this package's ``__init__``
stays empty so ``actions.coords`` can use ``ParseError`` without a cycle.
"""
