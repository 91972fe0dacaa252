#!/usr/bin/env python3
"""Defect: graceful drain on SIGTERM: stops accepting and removes its socket
file at once, but waits for every open connection to finish before exiting 0.
SIGINT is handled correctly (server.py)."""
import signal
import time
from server import Server, main, Shutdown


class DrainServer(Server):
    def on_term(self, signum, frame):
        if self.stopping:
            return
        self.stopping = True
        self.term = True
        raise Shutdown()

    def install_signals(self):
        super().install_signals()
        self.term = False
        signal.signal(signal.SIGTERM, self.on_term)

    def shutdown(self, lsock, signum=None):
        if self.term:
            lsock.close()
            self.remove_own()
            while True:
                with self.lock:
                    if not self.conns:
                        break
                time.sleep(0.05)
            import os
            os._exit(0)
        super().shutdown(lsock)


if __name__ == "__main__":
    main(DrainServer)
