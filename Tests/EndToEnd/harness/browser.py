"""Headless Chromium (Debian's `chromium`) driven over the DevTools protocol, standard library only.

  Chromium(processes, tmp)   starts `chromium --headless --remote-debugging-pipe` through the
                             test's Processes registry (stopped by PID), its profile under tmp
  .open(url, width, height)  loads url in a viewport of exactly width x height CSS pixels
                             (mobile emulation, i.e. the page's <meta viewport> honoured, below
                             600 px), waits (bounded) for the load to finish
  .evaluate(expression)      the JSON value of a JavaScript expression in the page
  .screenshot(path)          a PNG of the whole page (beyond the viewport), written to path
  .dialogs                   the messages of the JavaScript dialogs the pages opened (alert(),
                             confirm()...), each dismissed at once so that a script injected into a
                             page cannot block the protocol: a test asserts it is empty
  .close()                   Browser.close, then a bounded wait for the process to exit

Why the pipe: `--remote-debugging-pipe` speaks the protocol as NUL-terminated JSON messages on
the child's fds 3 (commands in) and 4 (replies and events out), so no WebSocket client (not in
the standard library, not installed here) and no TCP port are needed. `--dump-dom` and
`--screenshot` alone cannot measure a layout: the DOM they print has no widths in it.

Every read has a deadline; a browser that stops answering fails the test, and the Processes
registry SIGTERMs, then SIGKILLs it by PID in teardown.
"""
import base64
import fcntl
import json
import os
import select
import shutil
import time

import pytest

COMMAND_TIMEOUT = 30.0  # one DevTools command (a debug-build page, a loaded 2-core machine)
LOAD_TIMEOUT = 30.0


def chromium_binary():
    """Debian's `chromium` (scripts/install-deps.sh test installs it)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("chromium is missing (scripts/install-deps.sh test installs Debian's chromium)", pytrace=False)
    return found


class Chromium:
    def __init__(self, processes, tmp):
        self.tmp = tmp
        self.profile = tmp / "chromium-profile"
        self.profile.mkdir(parents=True, exist_ok=True)
        # Our ends: we write commands to `commands_w`, read replies from `replies_r`.
        commands_r, self.commands_w = os.pipe()
        self.replies_r, replies_w = os.pipe()
        # Moved above 9 first, so that moving them to 3 and 4 below cannot close one another.
        for name in ("commands_r", "replies_w"):
            low = locals()[name]
            high = fcntl.fcntl(low, fcntl.F_DUPFD_CLOEXEC, 10)
            os.close(low)
            if name == "commands_r":
                commands_r = high
            else:
                replies_w = high
        argv = [
            chromium_binary(), "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
            "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--mute-audio",
            "--user-data-dir=%s" % self.profile, "--remote-debugging-pipe", "--window-size=1280,900",
            "about:blank",
        ]
        # The pipe ends must be fds 3 and 4 in the browser: bash (dash takes single-digit fds
        # only) moves them there and execs it (same PID, so the registry stops the browser).
        shell = 'exec "$@" 3<&%d 4>&%d %d<&- %d>&-' % (commands_r, replies_w, commands_r, replies_w)
        self.process = processes.start(["/bin/bash", "-c", shell, "bash", *argv], tmp / "chromium.log",
                                       pass_fds=(commands_r, replies_w))
        os.close(commands_r)
        os.close(replies_w)
        self.log_path = tmp / "chromium.log"
        self._buffer = b""
        self._next_id = 0
        self.session = None
        self.dialogs = []
        self._attach()

    # ------------------------------------------------------------------ the protocol

    def _send(self, method, params=None, session=True):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self.commands_w, json.dumps(message).encode() + b"\0")
        return self._next_id

    def _read_message(self, deadline):
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self.replies_r], [], [], min(remaining, 0.5))
            if ready:
                chunk = os.read(self.replies_r, 1 << 20)
                if not chunk:
                    pytest.fail("chromium closed its DevTools pipe%s" % self.context(), pytrace=False)
                self._buffer += chunk
            elif self.process.poll() is not None:
                pytest.fail("chromium exited with %s%s" % (self.process.returncode, self.context()), pytrace=False)
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def command(self, method, params=None, timeout=COMMAND_TIMEOUT, session=True):
        """Sends one command and returns its result (events in between are dropped)."""
        wanted = self._send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            message = self._read_message(deadline)
            if message is None:
                pytest.fail("chromium did not answer %s within %.0f s%s" % (method, timeout, self.context()),
                            pytrace=False)
            if message.get("id") == wanted:
                if "error" in message:
                    pytest.fail("chromium: %s failed: %r" % (method, message["error"]), pytrace=False)
                return message.get("result", {})
            if message.get("method") == "Page.javascriptDialogOpening":
                # A dialog blocks the page's scripts and our evaluations until it is closed.
                self.dialogs.append(message["params"].get("message"))
                self._send("Page.handleJavaScriptDialog", {"accept": False})

    def _attach(self):
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while True:
            targets = self.command("Target.getTargets", session=False)["targetInfos"]
            pages = [t for t in targets if t["type"] == "page"]
            if pages:
                break
            if time.monotonic() > deadline:
                pytest.fail("chromium opened no page%s" % self.context(), pytrace=False)
            time.sleep(0.1)
        self.session = self.command("Target.attachToTarget", {"targetId": pages[0]["targetId"], "flatten": True},
                                    session=False)["sessionId"]
        self.command("Page.enable")
        self.command("Runtime.enable")

    # ------------------------------------------------------------------ pages

    def open(self, url, width, height):
        """Loads `url` in a width x height viewport; returns when document.readyState is
        'complete' (bounded)."""
        self.command("Emulation.setDeviceMetricsOverride",
                     {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})
        self.command("Page.navigate", {"url": url})
        deadline = time.monotonic() + LOAD_TIMEOUT
        while self.evaluate("document.readyState + ' ' + location.href") != "complete " + url:
            if time.monotonic() > deadline:
                pytest.fail("chromium did not finish loading %s within %.0f s%s" % (url, LOAD_TIMEOUT, self.context()),
                            pytrace=False)
            time.sleep(0.1)

    def evaluate(self, expression):
        """The value of a JavaScript expression (JSON-serialisable) in the page."""
        result = self.command("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            pytest.fail("chromium: %s threw %r" % (expression, result["exceptionDetails"]), pytrace=False)
        return result["result"].get("value")

    def screenshot(self, path):
        """A PNG of the whole page, its full height at the viewport's width."""
        size = self.command("Page.getLayoutMetrics")["cssContentSize"]
        shot = self.command("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    # ------------------------------------------------------------------ the end

    def context(self):
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            text = ""
        return "\n--- %s (tail) ---\n%s" % (self.log_path, "\n".join(text.splitlines()[-20:]))

    def close(self, timeout=10.0):
        """Browser.close, then waits (bounded) for the process; the registry kills what is left."""
        if self.process.poll() is None:
            try:
                self._send("Browser.close", session=False)
            except OSError:
                pass
            try:
                self.process.wait(timeout=timeout)
            except Exception:  # noqa: BLE001 - the Processes teardown stops it by PID
                pass
        for fd in (self.commands_w, self.replies_r):
            try:
                os.close(fd)
            except OSError:
                pass
