"""systemd's sd_notify protocol: one datagram to $NOTIFY_SOCKET, if systemd gave us one."""

import os
import socket


def send(state: str) -> bool:
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    if path.startswith("@"):
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(path)
            sock.sendall(state.encode())
        return True
    except OSError:
        return False
