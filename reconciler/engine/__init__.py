"""The Docker edge: ``host`` executes against one engine (the only code importing ``docker``);
``translate`` builds labels and create arguments as plain values; ``images`` makes
registry-free images.

May import: everything below ``apply`` except ``forwarder`` and ``source.git``; ``docker``.
"""
