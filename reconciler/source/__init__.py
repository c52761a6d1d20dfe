"""Where manifests and hosts come from: files and stdin (``load``, with the YAML ``composer``),
the hosts file (``hosts``), and git (``git``, the only package that imports GitPython).

May import: ``core``; ``source.git`` may also import ``git`` and, above the pure stages, nothing
of ours but ``core``.
"""
