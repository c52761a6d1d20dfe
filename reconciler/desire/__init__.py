"""The desired state, as a pure function: manifests + hosts (+ live state, host memory, time)
→ pods placed on hosts, Services with cluster IPs and their forwarders.

May import: ``core``, ``source.hosts``, ``check`` (values only). No I/O.
"""
