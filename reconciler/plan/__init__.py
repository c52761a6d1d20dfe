"""``plan(desired, live) → Plan``: the actions that close the gap, field-level diffs, the
guards against mass removal. Pure.

May import: ``core``, ``desire``.
"""
