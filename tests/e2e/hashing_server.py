"""An HTTP/1.1 server for large uploads that keeps hashes, not bodies.

Per request it writes one JSON line: the head as received (base64), the sha256
and length of the body as framed on the wire (chunk framing included), the
sha256 of the decoded body, and whether the body was complete. A connection that
closes inside a body is written with complete=false and the bytes that came. It
answers "200 OK" after each complete request and keeps the connection alive.

Usage: hashing_server.py --addr A --port P --record FILE
Prints "ready" once listening.
"""
import argparse
import base64
import hashlib
import json
import socket
import sys
import threading

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
READ = 1 << 18


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.eof = False

    def fill(self):
        data = self.sock.recv(READ)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def line(self):
        """One line with its CRLF from the buffer, reading as needed; None at EOF."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                out = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return out
            if not self.fill():
                return None

    def take(self, n, sinks):
        """Passes the next n bytes to every sink; the count passed (less at EOF)."""
        got = 0
        while got < n:
            if not self.buf and not self.fill():
                break
            k = min(n - got, len(self.buf))
            piece = memoryview(self.buf)[:k]
            for s in sinks:
                s.update(piece)
            piece.release()
            del self.buf[:k]
            got += k
        return got


class Counter:
    def __init__(self):
        self.n = 0

    def update(self, b):
        self.n += len(b)


def read_chunked(c, wire, decoded, count):
    """Reads a chunked body through the sinks; False when the connection ends inside it."""
    in_trailers = False
    while True:
        line = c.line()
        if line is None:
            return False
        wire.update(line)
        count.update(line)
        if in_trailers:
            if line == b"\r\n":
                return True
            continue
        size = int(line.split(b";")[0].strip(), 16)
        if size == 0:
            in_trailers = True  # trailers, then the blank line
        elif c.take(size, (wire, decoded, count)) < size or c.take(2, (wire, count)) < 2:
            return False


def serve(sock, out, lock):
    c = Conn(sock)
    try:
        while True:
            head = b""
            while True:
                line = c.line()
                if line is None:
                    return
                head += line
                if line in (b"\r\n", b"\n"):
                    break
            if head in (b"\r\n", b"\n"):
                continue
            wire, decoded, count = hashlib.sha256(), hashlib.sha256(), Counter()
            chunked, length = False, 0
            for h in head.split(b"\r\n")[1:]:
                name, _, value = h.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
                elif name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
            if chunked:
                complete = read_chunked(c, wire, decoded, count)
            else:
                complete = c.take(length, (wire, decoded, count)) == length
            rec = {"head": base64.b64encode(head).decode(), "wire_sha256": wire.hexdigest(),
                   "body_sha256": decoded.hexdigest(), "wire_bytes": count.n, "complete": complete}
            with lock:
                out.write(json.dumps(rec) + "\n")
            if not complete:
                return
            sock.sendall(RESPONSE)
    except (OSError, ValueError):
        pass
    finally:
        sock.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--record", required=True)
    args = ap.parse_args()
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((args.addr, args.port))
    srv.listen(64)
    out = open(args.record, "a", buffering=1)
    lock = threading.Lock()
    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn, out, lock), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
