#!/usr/bin/env python3
"""Defect: line-based protocol. Reads lines; answers b"ping\n" with b"pong\n";
any other line closes the connection. Lifecycle is server.py's (correct)."""
from server import Server, main


class LineServer(Server):
    def handle(self, conn):
        try:
            f = conn.makefile("rb")
            for line in f:
                if line == b"ping\n":
                    self.send(conn, b"pong\n")
                elif line == b"end\n":
                    break
                else:
                    break
        except OSError:
            pass
        finally:
            with self.lock:
                self.conns.discard(conn)
            try:
                conn.close()
            except OSError:
                pass


if __name__ == "__main__":
    main(LineServer)
