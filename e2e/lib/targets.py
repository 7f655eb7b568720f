#!/usr/bin/env python3
"""Scan targets with known weaknesses, for vigil's end-to-end tests and demo.

    targets.py CERT KEY [SSH TLS HTTP CLOSED]

Listens on loopback addresses (Linux routes all of 127.0.0.0/8 to lo):

    127.0.0.2:<ssh>   sends an SSH banner (an open port with a banner)
    127.0.0.3:<tls>   TLS with CERT/KEY (expired and self-signed in tests)
    127.0.0.4:<http>  plain HTTP: a Server version, no security headers,
                      no redirect to HTTPS

The ports are free ones picked at start (or the four given, so a second
run scans the same services), the same number never reused across the
three, and one more port (<closed>) that nothing listens on.
Prints one JSON line {"ssh":..,"tls":..,"http":..,"closed":..} once
everything listens, then serves until SIGTERM.
"""
import http.server
import json
import signal
import socket
import socketserver
import ssl
import sys
import threading


def free_port(taken):
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in taken:
            taken.add(port)
            return port


class Banner(socketserver.BaseRequestHandler):
    def handle(self):
        try:
            self.request.sendall(b"SSH-2.0-OpenSSH_7.4 vigil-demo\r\n")
            self.request.settimeout(2)
            self.request.recv(256)
        except OSError:
            pass


class Plain(http.server.BaseHTTPRequestHandler):
    server_version = "Apache/2.4.41"
    sys_version = "(Ubuntu)"

    def do_GET(self):
        body = b"<html><body>vigil demo target</body></html>\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("X-Powered-By", "PHP/7.2.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, *args):
        pass


class Quiet:
    """Scanners hang up mid-request: nothing worth a traceback."""

    def handle_error(self, request, client_address):
        pass


class TLSServer(Quiet, socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, ctx):
        self.ctx = ctx
        super().__init__(addr, handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        sock.settimeout(5)
        try:
            return self.ctx.wrap_socket(sock, server_side=True), addr
        except (ssl.SSLError, OSError):
            sock.close()
            raise


class TLSHello(socketserver.BaseRequestHandler):
    def handle(self):
        try:
            self.request.recv(1024)
        except OSError:
            pass


class Threaded(Quiet, socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class ThreadedHTTP(Quiet, http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    cert, key = sys.argv[1], sys.argv[2]
    names = ("ssh", "tls", "http", "closed")
    if len(sys.argv) == 7:
        ports = dict(zip(names, (int(p) for p in sys.argv[3:7])))
    else:
        taken = set()
        ports = {n: free_port(taken) for n in names}
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    servers = [
        Threaded(("127.0.0.2", ports["ssh"]), Banner),
        TLSServer(("127.0.0.3", ports["tls"]), TLSHello, ctx),
        ThreadedHTTP(("127.0.0.4", ports["http"]), Plain),
    ]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    signal.signal(signal.SIGINT, lambda *a: done.set())
    print(json.dumps(ports), flush=True)
    done.wait()
    for s in servers:
        s.shutdown()


if __name__ == "__main__":
    main()
