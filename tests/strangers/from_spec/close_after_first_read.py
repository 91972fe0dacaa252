#!/usr/bin/env python3
"""Defect: handles only the first recv() of each connection (decoding it
correctly, answering its pings), then closes. With a lock-step client that
sends one byte per write, the first read is 1 byte: the server closes after
the first byte it reads. Lifecycle is server.py's (correct)."""
from server import Server, main


class FirstReadServer(Server):
    def handle(self, conn):
        st = [None, 0]
        try:
            data = conn.recv(4096)
            if data:
                pongs, _ = self.decode(st, data)
                self.reply(conn, pongs)
        except OSError:
            pass
        finally:
            with self.lock:
                self.conns.discard(conn)
            conn.close()


if __name__ == "__main__":
    main(FirstReadServer)
