"""Validation: JSON Schemas compiled into checks, per-object and whole-tree semantic checks,
and the parallel loader of ``reconciler validate``. Pure: manifests in, diagnostics out.

May import: ``core``, ``source.load``, ``source.composer``.
"""
