#!/usr/bin/env python3
"""Correct asyncio server. Socket-file lifecycle reused from server.py
(Server.check_path / bind / remove_own); serving with asyncio streams."""
import asyncio
import os
import signal
import sys

from server import Server, IDLE_TIMEOUT, WRITE_TIMEOUT


class AsyncServer(Server):
    async def client(self, reader, writer):
        self.count("accepted")
        task = asyncio.current_task()
        self.tasks.add(task)
        st = [None, 0]
        how = "eof"
        try:
            while True:
                try:
                    data = await asyncio.wait_for(reader.read(4096), IDLE_TIMEOUT)
                except asyncio.TimeoutError:
                    how = "timeout"
                    break
                except ConnectionResetError:
                    data = b""
                if not data:
                    how = "eof"
                    break
                pongs, ended = self.decode(st, data)
                if pongs:
                    writer.write(b"pong" * pongs)
                    await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)
                if ended:
                    how = ended
                    break
        except asyncio.TimeoutError:
            how = "timeout"
        except (BrokenPipeError, ConnectionResetError):
            how = "eof"
        except asyncio.CancelledError:
            how = "shutdown"
        except OSError:
            how = "ioerror"
        finally:
            if how in self.counts:
                self.count(how)
            self.tasks.discard(task)
            writer.transport.abort() if how in ("timeout", "ioerror") else writer.close()

    async def amain(self):
        self.check_path()
        stops = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR2,
                 signal.SIGALRM, signal.SIGVTALRM, signal.SIGPROF, signal.SIGIO,
                 signal.SIGPWR, signal.SIGXCPU]
        signal.pthread_sigmask(signal.SIG_BLOCK, stops)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        lsock = self.bind()
        self.tasks = set()
        loop = asyncio.get_running_loop()
        stop = loop.create_future()
        for s in stops:
            loop.add_signal_handler(s, lambda: stop.done() or stop.set_result(None))
        loop.add_signal_handler(signal.SIGUSR1, self.on_usr1, signal.SIGUSR1, None)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
        srv = await asyncio.start_unix_server(self.client, sock=lsock, backlog=128)
        await stop
        srv.close()   # stops accepting (asyncio does not unlink a sock= server's path)
        for t in list(self.tasks):
            t.cancel()
        self.remove_own()
        os._exit(0)


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "udsocket"
    asyncio.run(AsyncServer(path).amain())
