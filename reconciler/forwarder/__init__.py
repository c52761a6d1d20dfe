"""The Service forwarder: a static epoll program in C (``forwarder.c``), compiled once with the
local C compiler and cached (``build``).

May import: ``core``, ``desire``; runs the compiler (``subprocess``).
"""
