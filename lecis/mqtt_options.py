"""MQTT client settings both sides use."""

from __future__ import annotations

import socket

# Commands and ESTOPs are small packets sent right after other small packets
# (a PUBACK); with Nagle's algorithm on, each waits for the peer's delayed ACK,
# about 40 ms. Every labedge client turns it off.
NO_DELAY_SOCKET_OPTIONS: tuple[tuple[int, int, int], ...] = (
    (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),
)
