"""HTTP/1.1 server for the datapath end-to-end test (runs inside a backend node's namespace).

GET /whoami      -> "<node> <local address the request arrived on>\n" (which backend served it)
GET /blob/<n>    -> n bytes, byte k = k % 251
POST /upload     -> "<bytes received> <adler32 of the body>\n"

Usage: e2e_server.py NODE PORT
"""

import http.server
import socket
import sys
import zlib

NODE = sys.argv[1]
PORT = int(sys.argv[2])
# A whole number of 251-byte periods, so every chunk continues the k % 251 pattern.
CHUNK = bytes(range(251)) * 261


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, body):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/whoami":
            local = self.connection.getsockname()[0]
            # IPv4 connections to the dual-stack socket show as IPv4-mapped IPv6.
            if local.startswith("::ffff:"):
                local = local[len("::ffff:"):]
            self.reply(f"{NODE} {local}\n".encode())
        elif self.path.startswith("/blob/"):
            n = int(self.path[len("/blob/"):])
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            left = n
            while left > 0:
                w = min(left, len(CHUNK))
                self.wfile.write(CHUNK[:w])
                left -= w
        else:
            self.send_error(404)

    def do_POST(self):
        n = int(self.headers["Content-Length"])
        got = 0
        adler = 1
        while got < n:
            data = self.rfile.read(min(65536, n - got))
            if not data:
                break
            got += len(data)
            adler = zlib.adler32(data, adler)
        self.reply(f"{got} {adler}\n".encode())

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    # Dual-stack: "::" with IPV6_V6ONLY off (Linux's default) takes IPv4 connections too.
    address_family = socket.AF_INET6
    daemon_threads = True
    allow_reuse_address = True


Server(("::", PORT), Handler).serve_forever()
