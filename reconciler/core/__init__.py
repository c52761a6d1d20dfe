"""Frozen values every stage shares: the model, ownership labels and spec hashes, names,
quantities, selectors, redaction and the exception tree.

May import: the standard library only.
"""
