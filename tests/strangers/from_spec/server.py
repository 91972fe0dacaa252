#!/usr/bin/env python3
"""ping/pong server over a Unix stream socket, written from SPEC.md only.

usage: server.py [PATH]      (default ./udsocket; "@name" = Linux abstract address)

Threads: one per connection. Lifecycle as SPEC 7: lstat + non-blocking probe,
private directory for every removal and for the bind, link() into place (never
replaces), O_PATH references for "same file" checks, umask 0177 before bind.
Defect variants (other files) subclass Server and override one method.
"""
import ctypes
import errno
import os
import select
import signal
import socket
import stat
import sys
import tempfile
import threading
import time

MAX_PATH = 107
IDLE_TIMEOUT = 120.0   # SRV-IDLE-1
WRITE_TIMEOUT = 10.0   # SRV-WRITE-1
BACKOFF = 0.05         # SRV-ACCEPT-1
O_PATH = getattr(os, "O_PATH", 0o10000000)
RENAME_NOREPLACE = 1
AT_FDCWD = -100

_libc = ctypes.CDLL(None, use_errno=True)


def renameat2_noreplace(old, new):
    r = _libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new),
                        RENAME_NOREPLACE)
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), new)


def die(msg, code=1):
    try:
        sys.stderr.write("server: %s\n" % msg)
        sys.stderr.flush()
    except Exception:
        pass
    os._exit(code)


def kind_of(st):
    m = st.st_mode
    for test, name in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(m):
            return name
    return "a non-socket file"


def same(a, b):
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


class Shutdown(Exception):
    pass


class Server:
    def __init__(self, path):
        self.path = path
        self.abstract = path.startswith("@")
        self.conns = set()
        self.lock = threading.Lock()
        self.ref = None          # O_PATH fd of the socket file we created
        self.counts = dict(accepted=0, refused=0, end=0, invalid=0, eof=0, timeout=0, ioerror=0)
        self.stopping = False

    # ---------- path rules ----------
    def check_path(self):
        n = len(os.fsencode(self.path))
        if n > MAX_PATH:
            die("socket path %r is too long: %d bytes (at most %d fit in sun_path)"
                % (self.path, n, MAX_PATH))

    def private_dir(self):
        d = os.path.dirname(self.path) or "."
        return tempfile.mkdtemp(prefix="." + os.path.basename(self.path) + ".udsping-", dir=d)

    def probe(self):
        """Return 'refused', 'live' or an error string."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(self.path)
            return "live"
        except BlockingIOError:          # EAGAIN / EINPROGRESS: backlog full = live
            return "live"
        except ConnectionRefusedError:
            return "refused"
        except OSError as e:
            return "connect failed: %s" % (e.strerror or e)
        finally:
            s.close()

    def remove_stale(self, ref):
        priv = self.private_dir()
        moved = os.path.join(priv, "stale")
        try:
            os.rename(self.path, moved)
        except FileNotFoundError:
            os.rmdir(priv)
            return
        st = os.lstat(moved)
        if same(st, os.fstat(ref)):
            os.unlink(moved)
            os.rmdir(priv)
            return
        try:
            renameat2_noreplace(moved, self.path)
            os.rmdir(priv)
            die("%s: the stale socket was replaced by another file while removing it; "
                "refusing to start" % self.path)
        except OSError:
            die("%s: the stale socket was replaced by another file, which could not be put "
                "back; it is at %s" % (self.path, moved))

    def inspect(self):
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            die("%s: refusing to start: %s is at the path" % (self.path, kind_of(st)))
        try:
            ref = os.open(self.path, O_PATH | os.O_NOFOLLOW)
        except FileNotFoundError:
            return
        if not same(os.fstat(ref), st):
            die("%s: the file at the path changed while inspecting it; refusing to start" % self.path)
        r = self.probe()
        if r == "live":
            die("%s: another server is listening there; refusing to start" % self.path)
        if r != "refused":
            die("%s: cannot tell whether the socket there is stale (%s); refusing to start"
                % (self.path, r))
        self.remove_stale(ref)
        os.close(ref)

    def bind(self):
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.abstract:
            try:
                lsock.bind("\0" + self.path[1:])
            except OSError as e:
                die("%s: cannot bind the abstract address: %s" % (self.path, e.strerror))
            lsock.listen(128)
            return lsock
        self.inspect()
        priv = self.private_dir()
        dfd = os.open(priv, os.O_RDONLY | os.O_DIRECTORY)
        inner = os.path.join(priv, "socket")
        try:
            old = os.umask(0o177)
            try:
                lsock.bind("/proc/self/fd/%d/socket" % dfd)
            finally:
                os.umask(old)
            os.chmod("socket", 0o600, dir_fd=dfd)   # inside the private dir: no window
            self.ref = os.open(inner, O_PATH | os.O_NOFOLLOW)
            if not stat.S_ISSOCK(os.fstat(self.ref).st_mode):
                raise OSError(errno.EEXIST, "bound socket replaced")
            lsock.listen(128)
            os.link(inner, self.path)               # fails if anything is there
        except OSError as e:
            try:
                os.unlink(inner)
            except OSError:
                pass
            os.close(dfd)
            os.rmdir(priv)
            if e.errno == errno.EEXIST:
                die("%s: something appeared at the path while starting; refusing to start" % self.path)
            die("%s: cannot bind: %s" % (self.path, e.strerror))
        os.unlink(inner)
        os.close(dfd)
        os.rmdir(priv)
        return lsock

    def remove_own(self):
        if self.abstract or self.ref is None:
            return
        try:
            priv = self.private_dir()
        except OSError:
            return
        moved = os.path.join(priv, "socket")
        try:
            os.rename(self.path, moved)
        except OSError:
            os.rmdir(priv)
            return
        if same(os.lstat(moved), os.fstat(self.ref)):
            os.unlink(moved)
            os.rmdir(priv)
            return
        try:
            renameat2_noreplace(moved, self.path)
            os.rmdir(priv)
        except OSError:
            sys.stderr.write("server: the file that replaced %s could not be put back; it is at %s\n"
                             % (self.path, moved))

    # ---------- serving ----------
    def count(self, key):
        with self.lock:
            self.counts[key] += 1

    def send(self, conn, data):
        conn.settimeout(WRITE_TIMEOUT)
        conn.sendall(data)

    def decode(self, st, data):
        """st = [token, pos]; returns (pongs, how) with how in None/'end'/'invalid'."""
        pongs = 0
        for b in data:
            tok, pos = st
            if tok is None:
                if b == 0x70:
                    st[0], st[1] = b"ping", 1
                elif b == 0x65:
                    st[0], st[1] = b"end", 1
                else:
                    return pongs, "invalid"
            elif b == tok[pos]:
                st[1] = pos + 1
                if st[1] == len(tok):
                    st[0], st[1] = None, 0
                    if tok == b"end":
                        return pongs, "end"
                    pongs += 1
            else:
                return pongs, "invalid"
        return pongs, None

    def reply(self, conn, pongs):
        if pongs:
            self.send(conn, b"pong" * pongs)

    def handle(self, conn):
        st = [None, 0]
        how = "eof"
        try:
            while True:
                conn.settimeout(IDLE_TIMEOUT)
                try:
                    data = conn.recv(4096)
                except socket.timeout:
                    how = "timeout"
                    break
                except ConnectionResetError:      # WIRE-CLOSE-1: same as EOF
                    data = b""
                if not data:
                    how = "eof"
                    break
                pongs, ended = self.decode(st, data)
                self.reply(conn, pongs)
                if ended:
                    how = ended
                    break
        except socket.timeout:
            how = "timeout"
        except (BrokenPipeError, ConnectionResetError):
            how = "eof"
        except OSError:
            how = "ioerror"
        finally:
            self.count(how)
            with self.lock:
                self.conns.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def start_thread(self, conn):
        while True:
            try:
                t = threading.Thread(target=self.handle, args=(conn,), daemon=True)
                t.start()
                return
            except RuntimeError:              # cannot start a thread: back off, keep conn
                time.sleep(BACKOFF)

    def serve(self, lsock):
        while True:
            try:
                conn, _ = lsock.accept()
            except OSError as e:
                if e.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EINTR):
                    continue
                time.sleep(BACKOFF)
                continue
            with self.lock:
                self.conns.add(conn)
                self.counts["accepted"] += 1
            self.start_thread(conn)

    # ---------- signals ----------
    def on_stop(self, signum, frame):
        if self.stopping:
            return
        self.stopping = True
        raise Shutdown()

    def on_usr1(self, signum, frame):
        try:
            with self.lock:
                c = dict(self.counts)
                c["open"] = len(self.conns)
            os.write(2, ("server: counts %s\n" % c).encode())
        except OSError:
            pass

    def install_signals(self):
        for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR2", "SIGALRM",
                     "SIGVTALRM", "SIGPROF", "SIGIO", "SIGPWR", "SIGXCPU"):
            signal.signal(getattr(signal, name), self.on_stop)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        signal.signal(signal.SIGUSR1, self.on_usr1)

    def close_all(self):
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                c.close()
            except OSError:
                pass

    def shutdown(self, lsock, signum=None):
        try:
            lsock.close()
        except OSError:
            pass
        self.close_all()
        self.remove_own()
        os._exit(0)

    def run(self):
        self.check_path()
        self.install_signals()
        lsock = None
        stops = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT}
        try:
            signal.pthread_sigmask(signal.SIG_BLOCK, stops)
            try:
                lsock = self.bind()
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
            self.serve(lsock)
        except Shutdown:
            if lsock is None:
                os._exit(0)
            self.shutdown(lsock)


def main(cls=Server):
    path = sys.argv[1] if len(sys.argv) > 1 else "udsocket"   # TRN-PATH-1
    cls(path).run()


if __name__ == "__main__":
    main()
