"""flask_sio09: a Flask extension that speaks the Socket.IO 0.9 wire protocol.

Only the names of the public API are exported here; ``flask_sio09.packet`` is
the public codec module.
"""

# (first: it decides whether the compiled modules or their sources are imported)
from . import native as _native

_native.choose()

from . import packet as packet  # noqa: E402
from .extension import ConnectionRefusedError as ConnectionRefusedError
from .extension import SocketIO as SocketIO
from .extension import close_room as close_room
from .extension import disconnect as disconnect
from .extension import emit as emit
from .extension import join_room as join_room
from .extension import leave_room as leave_room
from .extension import rooms as rooms
from .extension import send as send
from .namespace import Namespace as Namespace

__version__ = "0.1.0"

__all__ = [
    "ConnectionRefusedError",
    "Namespace",
    "SocketIO",
    "close_room",
    "disconnect",
    "emit",
    "join_room",
    "leave_room",
    "packet",
    "rooms",
    "send",
]
