#!/usr/bin/env python3
"""A control socket server that is not pqshim: what an attacker plants.

    fake_control.py REPLY LOG PATH...

Listens at every PATH (mode 0666: anyone may connect). REPLY is a file
whose bytes answer each request ("{pid}" replaced by this process's pid),
or "-" to accept and never answer. Whatever clients send is appended to
LOG. Prints "ready" once every socket listens; runs until killed.
"""
import os
import selectors
import socket
import sys

reply_file, log = sys.argv[1], sys.argv[2]
reply = None
if reply_file != "-":
    with open(reply_file, "rb") as f:
        reply = f.read().replace(b"{pid}", str(os.getpid()).encode())
os.umask(0)
sel = selectors.DefaultSelector()
for path in sys.argv[3:]:
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.listen(64)
    sel.register(s, selectors.EVENT_READ)
print("ready", flush=True)
held = []
while True:
    for key, _ in sel.select():
        conn, _ = key.fileobj.accept()
        if reply is None:
            held.append(conn)  # a hung server: accept and never answer
            continue
        conn.settimeout(0.5)
        try:
            got = conn.recv(4096)
            with open(log, "ab") as f:
                f.write(got)
            conn.sendall(reply)
        except OSError:
            pass
        conn.close()
