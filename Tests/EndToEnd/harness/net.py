"""127.0.0.1 only.

  free_port()                 a TCP port on 127.0.0.1 the kernel just handed out
  http_get(url)               (status, body) of a GET; 4xx and 5xx are answers, not exceptions
  http_request(port, path)    (status, {lower-case header: value}, body) on a new connection
"""
import http.client
import socket
import urllib.error
import urllib.request

LOOPBACK = "127.0.0.1"


def free_port():
    """A port on 127.0.0.1 that was free a moment ago (the kernel chose it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def http_get(url, timeout=5.0):
    """(status, body bytes) of a GET; 4xx and 5xx are answers too, not exceptions."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def http_request(port, path, headers=None, timeout=10.0, method="GET"):
    """(status, headers {lower-case name: value}, body bytes) of one request on a new connection."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        conn.close()
