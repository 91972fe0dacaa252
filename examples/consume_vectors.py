#!/usr/bin/env python3
"""Checks every vector `udsping conform export DIR` wrote against a server model of its own:
what a conforming server replies to each connection's writes, and whether it closes
(SPEC.md sections 4 and 5). Usage: python3 consume_vectors.py DIR; exit 0 when all match."""
import json, pathlib, sys

def serve(stream, eof):
    """Pongs owed for `stream`, and whether the server closes (end, an invalid byte, or EOF)."""
    pongs, i = 0, 0
    while stream.startswith(b"ping", i):
        pongs, i = pongs + 1, i + 4
    rest = stream[i:]
    if rest.startswith(b"end"):
        return pongs, True                      # SRV-END-1: owed pongs, then the close
    if b"ping".startswith(rest) or b"end".startswith(rest):
        return pongs, eof                       # valid so far: open until the client's EOF
    return pongs, True                          # SRV-INVALID-1: owed pongs, then the close

checked = 0
for path in sorted(pathlib.Path(sys.argv[1]).glob("*/*.json")):
    vector = json.loads(path.read_text())
    for conn in vector["connections"]:
        if conn["client_reset"]:
            continue                            # nobody reads replies on a reset connection
        stream = b"".join(bytes.fromhex(w["hex"]) for w in conn["writes"])
        pongs, closes = serve(stream, conn["client_eof"])
        if bytes.fromhex(conn["replies"]["hex"]) != b"pong" * pongs or conn["server_closes"] != closes:
            sys.exit(f"{path}: connection {conn['conn']}: {conn} is not what the model says")
        checked += 1
print(f"{checked} connections of the vectors in {sys.argv[1]} match")
