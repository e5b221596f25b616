"""systemd's notification protocol, checked from systemd's side: the test binds the datagram
socket NOTIFY_SOCKET names and reads what `flagwatch run` sends through libsystemd's sd_notify:
READY=1 once the listener answers and the sources are open, STATUS= lines, WATCHDOG=1 at half of
WATCHDOG_USEC, RELOADING=1 (with MONOTONIC_USEC) then READY=1 around a SIGHUP reload, STOPPING=1
on SIGTERM."""
import signal
import socket
import time

from harness.lines import istio_line


def config(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    (logs / "access.log").write_text("".join(istio_line("outbound|80||a.default.svc.cluster.local", index=i) for i in range(50)))
    return (
        "state_dir: %s\n"
        "sources:\n"
        "  - name: envoy\n"
        "    files: [\"%s/*.log\"]\n"
        "    format: istio\n"
        "    start_at: beginning\n" % (tmp_path / "state", logs)
    )


class NotifySocket:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages = []  # (monotonic time, {key: value})

    def read(self, until, stop_when=None):
        """Collects datagrams until monotonic `until` (or `stop_when(message)` is true)."""
        while True:
            left = until - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return None
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
            self.messages.append((time.monotonic(), fields))
            if stop_when and stop_when(fields):
                return fields

    def close(self):
        self.sock.close()


def test_ready_status_watchdog_reload_stopping(tmp_path, start_daemon):
    notify = NotifySocket(tmp_path / "notify.sock")
    try:
        daemon = start_daemon(config(tmp_path), env={
            "NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "1000000"})
        ready = notify.read(time.monotonic() + 20, lambda m: m.get("READY") == "1")
        assert ready is not None, "no READY=1 within 20 s: %r%s" % (notify.messages, daemon.context())
        # READY=1 means the listener answers now and the sources are open.
        assert daemon.get("/-/ready")[0] == 200
        assert "STATUS" in ready and "listening" in ready["STATUS"], ready
        assert not any("RELOADING" in m or "STOPPING" in m for _, m in notify.messages)

        # WATCHDOG=1 every 0.5 s (half of WATCHDOG_USEC) for 3 s.
        start = time.monotonic()
        notify.read(start + 3.0)
        pings = [t for t, m in notify.messages if m.get("WATCHDOG") == "1" and t >= start]
        assert 4 <= len(pings) <= 8, "expected ~6 WATCHDOG=1 in 3 s, got %d: %r" % (len(pings), notify.messages[-12:])
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        assert max(gaps) < 1.0, "a watchdog gap of %.2f s (the timeout is 1 s): %r" % (max(gaps), gaps)

        # Reload: RELOADING=1 with MONOTONIC_USEC, then READY=1 with a STATUS line.
        before = len(notify.messages)
        daemon.proc.send_signal(signal.SIGHUP)
        notify.read(time.monotonic() + 10, lambda m: m.get("READY") == "1")
        after = [m for _, m in notify.messages[before:] if "WATCHDOG" not in m]
        assert after and after[0].get("RELOADING") == "1", after
        assert int(after[0]["MONOTONIC_USEC"]) > 0, after
        assert after[-1].get("READY") == "1" and "lines/s" in after[-1].get("STATUS", ""), after
        assert "50 lines in all" in after[-1]["STATUS"], after

        # Stop: STOPPING=1, then exit 0.
        before = len(notify.messages)
        daemon.proc.send_signal(signal.SIGTERM)
        stopping = notify.read(time.monotonic() + 10, lambda m: m.get("STOPPING") == "1")
        assert stopping is not None, "no STOPPING=1: %r" % notify.messages[before:]
        assert daemon.proc.wait(15) == 0, daemon.context()
    finally:
        notify.close()


def test_without_notify_socket_nothing_is_sent(tmp_path, start_daemon):
    """Not started by systemd: the daemon runs the same, and never complains about the socket."""
    daemon = start_daemon(config(tmp_path))
    daemon.wait_ready()
    assert daemon.stop() == 0
    text = daemon.stderr_text()
    assert "watchdog" not in text.lower() and "sd_notify" not in text, daemon.context()
