"""Reports for people and tools: diagnostics, plans and live state as text, JSON, Markdown,
GitHub annotations and ``get`` tables. Pure.

May import: ``core``, ``source.hosts``, ``check``, ``desire``, ``plan``.
"""
