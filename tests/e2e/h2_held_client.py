#!/usr/bin/python3
"""An HTTP/2 (prior knowledge) client that keeps one connection open: sends
GET /before and prints "first-ok" once answered, then waits for a line on
stdin, sends GET /after on the same connection and prints "second-ok".
Used to check that a connection already open when shadowtap starts is skipped
without harm."""
import socket
import sys

import h2.config
import h2.connection
import h2.events


def request(sock, conn, stream_id, path, authority):
    conn.send_headers(stream_id, [(":method", "GET"), (":scheme", "http"), (":authority", authority),
                                  (":path", path)], end_stream=True)
    sock.sendall(conn.data_to_send())
    while True:
        data = sock.recv(65536)
        if not data:
            return False
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.StreamEnded) and ev.stream_id == stream_id:
                sock.sendall(conn.data_to_send())
                return True
        sock.sendall(conn.data_to_send())


def main():
    host, port, authority = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    sock = socket.create_connection((host, port), timeout=20)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    print("first-ok" if request(sock, conn, 1, "/before", authority) else "first-failed", flush=True)
    sys.stdin.readline()
    print("second-ok" if request(sock, conn, 3, "/after", authority) else "second-failed", flush=True)
    conn.close_connection()
    sock.sendall(conn.data_to_send())
    sock.close()


if __name__ == "__main__":
    main()
