#!/usr/bin/env python3
"""Defect: one global count of pongs owed, shared by all connections. Each
connection adds its complete pings to the global count, then sends (and
zeroes) whatever the global count is. Under contention one connection sends
another's pongs. (A 2 ms pause between add and send, standing in for work
such as logging, widens the window so contention is observable.)"""
import threading
import time
from server import Server, main

OWED = 0
OWED_LOCK = threading.Lock()


class SharedCounterServer(Server):
    def reply(self, conn, pongs):
        global OWED
        with OWED_LOCK:
            OWED += pongs
        time.sleep(0.002)
        with OWED_LOCK:
            n, OWED = OWED, 0
        if n:
            self.send(conn, b"pong" * n)


if __name__ == "__main__":
    main(SharedCounterServer)
