#!/usr/bin/env python3
"""Opens N TCP connections to HOST:PORT, sends on each the first part of a
request (request line and one header, no blank line), prints "ready N" and holds
them until stdin closes or it is killed. Used to make shadowtap track N idle
connections, each with a request in progress.

Usage: idle_conns.py HOST PORT N
"""
import resource
import socket
import sys


def main():
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    want = n + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), max(want, hard)))
    socks = []
    failed = 0
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.settimeout(5)
            s.connect((host, port))
            s.sendall(b"GET /idle/%d HTTP/1.1\r\nHost: service\r\n" % i)
            socks.append(s)
        except OSError:
            failed += 1
            s.close()
    print(f"ready {len(socks)} failed {failed}", flush=True)
    sys.stdin.read()  # hold until the parent closes our stdin
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
