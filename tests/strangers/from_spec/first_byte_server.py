#!/usr/bin/env python3
"""Defect (literal reading of "closes after the first byte it reads"): each
connection reads one byte (recv(1)) and then closes, whatever the byte was.
Lifecycle is server.py's (correct)."""
from server import Server, main


class FirstByteServer(Server):
    def handle(self, conn):
        try:
            conn.recv(1)
        except OSError:
            pass
        finally:
            with self.lock:
                self.conns.discard(conn)
            conn.close()


if __name__ == "__main__":
    main(FirstByteServer)
