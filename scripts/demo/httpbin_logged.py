"""httpbin (Debian's python3-httpbin) with an access log that shows the Host
header, like the pod logs in the seed tutorial. Usage: httpbin_logged.py NAME PORT"""
import sys
import time

from httpbin import app
from werkzeug.serving import WSGIRequestHandler, run_simple


def with_access_log(name, wsgi):
    def logged(environ, start_response):
        status_box = {}

        def capture(status, headers, exc_info=None):
            status_box["status"] = status.split(" ", 1)[0]
            return start_response(status, headers, exc_info)

        body = wsgi(environ, capture)
        print(f'[{time.strftime("%H:%M:%S")}] httpbin {name}: "{environ["REQUEST_METHOD"]} '
              f'{environ.get("RAW_URI") or environ.get("PATH_INFO")} {environ["SERVER_PROTOCOL"]}" '
              f'{status_box.get("status")} host={environ.get("HTTP_HOST")} '
              f'from={environ.get("REMOTE_ADDR")}', flush=True)
        return body
    return logged


class QuietHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real service would

    def log_request(self, *args, **kwargs):
        pass


if __name__ == "__main__":
    name, port = sys.argv[1], int(sys.argv[2])
    run_simple("0.0.0.0", port, with_access_log(name, app), threaded=True, request_handler=QuietHandler)
