"""reconciler: Kubernetes-style manifests reconciled onto plain Docker hosts."""

#: The version, in this one place: the wheel's metadata reads it (pyproject.toml's
#: ``[tool.hatch.version]``), ``reconciler --version`` prints it; CHANGELOG.md names the commit
#: of every release.
__version__ = "0.2.0.dev0"
