"""Validation: JSON Schemas compiled into checks, per-object and whole-tree semantic checks,
and the parallel loader of ``reconciler validate``. Pure: manifests in, diagnostics out.

``validate`` runs the passes in order: ``objects.check_shape``, the kind's schema check
(``schemas``, compiled by ``compiler``; its issues worded by ``report``), the per-object
checks (``objects``, ``pods``, ``deployments``), then the checks across objects (``tree``).
``parallel`` runs the same steps in worker processes.

May import: ``core``, ``source.load``, ``source.composer``.
"""
