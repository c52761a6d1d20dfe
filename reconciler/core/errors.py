"""Every exception the reconciler raises on purpose, under one root.

Problems with the *input* are not exceptions: they are ``Diagnostic`` values, so that one
run reports all of them with file, line and field. Exceptions are for what stops a stage:
an unreadable path, a host that does not answer, a git remote that refuses. The edges
(``engine`` for Docker, ``source.git`` for git, ``forwarder.build`` for the compiler)
translate their library's errors into these with ``raise ... from``, so no ``docker.errors``
or ``git.exc`` type ever crosses into the rest of the package, and the CLI can turn any
``ReconcilerError`` into a message and an exit code instead of a traceback::

    ReconcilerError
    ├── InputError                  a path or stdin cannot be read at all (a usage error)
    │   └── HostsFileError          the hosts file is unreadable or invalid (.diagnostics)
    ├── SelectorError  (ValueError) a -l label selector that does not parse
    ├── QuantityError  (ValueError) a resource quantity that does not parse
    ├── UnsupportedSchema           a schema keyword the compiled checker lacks (fallback)
    ├── SourceFailure               a git source could not be brought up to date
    │   ├── SourceError             permanent: no such repository/ref/path, refused
    │   └── SourceUnavailable       temporary: unreachable, timed out, cache busy
    ├── EngineError                 a Docker engine call failed
    │   ├── HostUnavailable         the engine cannot be reached (retry later)
    │   └── ApplyError              the engine refused an action
    │       ├── NotFound            the object is not (or no longer) there
    │       ├── ImagePullError      image missing and not pullable (ErrImagePull)
    │       ├── InitError           an init container failed: the pod waits (Init:Error)
    │       └── OwnershipError      a name is taken by an object we do not own
    ├── ImageSourceError            no static busybox to build registry-free images
    └── ForwarderBuildError         the Service forwarder cannot be compiled or found
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconciler.core.model import Diagnostic


class ReconcilerError(Exception):
    """The root: anything the reconciler raises on purpose derives from it."""


class InputError(ReconcilerError):
    """A path that cannot be read at all: a usage error rather than an invalid manifest."""


class HostsFileError(InputError):
    """The hosts file is unreadable or invalid; ``diagnostics`` say where."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        super().__init__("; ".join(f"{d.location}: {d.message}" for d in diagnostics))
        self.diagnostics = list(diagnostics)


class SelectorError(ReconcilerError, ValueError):
    """A label selector that does not parse; the message says where and why."""


class QuantityError(ReconcilerError, ValueError):
    """A resource quantity that does not parse."""


class UnsupportedSchema(ReconcilerError):
    """The schema uses a keyword the compiled checker does not implement."""


class SourceFailure(ReconcilerError):
    """A git source could not be brought up to date (see the two subclasses)."""


class SourceError(SourceFailure):
    """Permanent: the source names something that does not exist or cannot be used.

    No such repository, branch, tag, commit or sub-directory, a malformed url or ref,
    credentials refused. Retrying without changing the source (or the remote) will fail the
    same way, so a service should report it loudly rather than retry quickly.
    """


class SourceUnavailable(SourceFailure):
    """Temporary: the remote could not be reached in time; the same sync may work later.

    Connection refused or reset, name resolution failure, a git process killed at the
    timeout, another sync of the same source holding the cache, a full disk.
    """


class EngineError(ReconcilerError):
    """A Docker engine call failed."""


class HostUnavailable(EngineError):
    """The engine could not be reached; worth retrying later."""


class ApplyError(EngineError):
    """Docker refused an action."""


class NotFound(ApplyError):
    """The container, image, network or volume is not there (any more)."""


class ImagePullError(ApplyError):
    """The image is not on the host and could not be pulled (status ErrImagePull)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class InitError(ApplyError):
    """An init container exited non-zero. The pod stays as it is (its status is
    ``Init:Error``); a later pass restarts the init container if ``restartPolicy`` says so."""


class OwnershipError(ApplyError):
    """An object we were about to remove or replace does not carry our labels."""


class ImageSourceError(ReconcilerError):
    """No usable static busybox on this machine to build a registry-free image from."""


class ForwarderBuildError(ReconcilerError):
    """The Service forwarder could not be compiled (or the prebuilt one is unusable)."""
