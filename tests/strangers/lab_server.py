#!/usr/bin/env python3
# Lab 4: ping/pong server over a Unix domain socket (written like a university lab solution).
# Usage: python3 lab_server.py [SOCKET_PATH]
import os
import socket
import sys
import threading

SERVER_PATH = sys.argv[1] if len(sys.argv) > 1 else "./udsocket"


def handle(conn):
    buf = ""
    try:
        while True:
            data = conn.recv(1024)
            if not data:
                print("Server: client disconnected")
                break
            buf += data.decode()          # strict UTF-8: raises on a non-UTF-8 byte
            # consume complete tokens
            while True:
                if buf.startswith("ping"):
                    conn.sendall(b"pong")
                    buf = buf[4:]
                elif buf.startswith("end"):
                    print("Server: end received")
                    conn.close()
                    return
                elif buf == "" or "ping".startswith(buf) or "end".startswith(buf):
                    break                 # partial token, wait for more
                else:
                    print("Server: invalid message", repr(buf))
                    conn.close()
                    return
    except Exception as e:
        print("Server: error:", e)
    finally:
        conn.close()


def main():
    # remove the old socket if it exists
    try:
        os.unlink(SERVER_PATH)
    except OSError:
        if os.path.exists(SERVER_PATH):
            raise

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(SERVER_PATH)
    server.listen(5)
    print("Server: listening on", SERVER_PATH, flush=True)
    try:
        while True:
            conn, _ = server.accept()
            t = threading.Thread(target=handle, args=(conn,))
            t.start()
    except KeyboardInterrupt:
        print("Server: shutting down")
    finally:
        server.close()
        os.unlink(SERVER_PATH)


if __name__ == "__main__":
    main()
