"""Local networking helpers shared by `make demo` and `make bench`."""

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (for a server we start next)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
