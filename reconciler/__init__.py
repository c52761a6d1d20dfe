"""reconciler: Kubernetes-style manifests reconciled onto plain Docker hosts."""

__version__ = "0.1.0"
