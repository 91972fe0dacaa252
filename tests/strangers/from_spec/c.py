#!/usr/bin/env python3
"""Client: N lock-step rounds (default 100), each reply read as exactly 4 bytes
with a recv-until-4 loop, then compared with b"pong"; then "end" and close.
usage: c.py [PATH] [ROUNDS]"""
import socket
import sys

TIMEOUT = 10.0


def fail(msg):
    sys.stderr.write("client: %s\n" % msg)
    sys.exit(1)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "udsocket"
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    b = path.encode()
    if len(b) > 107:
        fail("socket path %r is too long: %d bytes (at most 107)" % (path, len(b)))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    try:
        s.connect(("\0" + path[1:]) if path.startswith("@") else path)
    except socket.timeout:
        fail("connecting to %s: timed out after %gs" % (path, TIMEOUT))
    except OSError as e:
        fail("cannot connect to %s: %s" % (path, e.strerror or e))
    try:
        for i in range(1, rounds + 1):
            s.sendall(b"ping")
            reply = b""
            while len(reply) < 4:
                try:
                    chunk = s.recv(4 - len(reply))
                except socket.timeout:
                    s.close()
                    fail("round %d: timed out after %gs waiting for the reply (%d of 4 bytes: %r)"
                         % (i, TIMEOUT, len(reply), reply))
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    s.close()
                    fail("round %d: server closed the connection after %d of 4 bytes of the reply (%r)"
                         % (i, len(reply), reply))
                reply += chunk
            if reply != b"pong":
                s.close()
                fail("round %d: protocol error: expected b'pong', received %r" % (i, reply))
        s.sendall(b"end")
    except OSError as e:
        s.close()
        fail("connection to %s: %s" % (path, e.strerror or e))
    s.close()


if __name__ == "__main__":
    main()
