"""Execute a Plan through the ``Runtime`` protocol (``execute``), the two-phase converge
(``converge``) and what a pass keeps on disk between runs (``state``).

May import: everything below it (engine, forwarder, source.git, render, plan, desire, check,
source, core).
"""
