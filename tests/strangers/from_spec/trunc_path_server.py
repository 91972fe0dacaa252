#!/usr/bin/env python3
"""Defect: no TRN-PATH-2 check: an over-long path is silently cut to the 107
bytes that fit in sun_path, and that (different) path is bound. Otherwise
server.py."""
import sys
from server import Server, MAX_PATH
import os


class TruncServer(Server):
    def check_path(self):
        b = os.fsencode(self.path)
        if len(b) > MAX_PATH:
            self.path = os.fsdecode(b[:MAX_PATH])


if __name__ == "__main__":
    TruncServer(sys.argv[1] if len(sys.argv) > 1 else "udsocket").run()
