"""Starting `flagwatch run` on a files source for the follow/ scenarios that need the daemon
(its /metrics, /-/ready, exit status), with every wait bounded and every process stopped by PID.

  DaemonRun(tmp, processes, logs_glob, ...)  writes a config (start_at beginning, a state dir,
                                             short rescan and checkpoint intervals) and starts
                                             `flagwatch run` on a free port, optionally under
                                             `prlimit --nofile=SOFT:HARD`
  run.wait_ready()                           /-/ready answers 200 (bounded)
  run.samples()                              one scrape of /metrics as {"name{labels}": value}
  run.stop()                                 SIGTERM by PID; the exit status (None if it had to
                                             be killed)
"""
import signal

from e2e_helpers import flagwatch_binary, free_port, http_get, log_tail, metric_samples, poll_until

BIN = flagwatch_binary()
SOURCE = "envoy"


class DaemonRun:
    def __init__(self, tmp, processes, logs_glob, *, state_dir, nofile=None, rescan="1s", checkpoint="1s", name="run"):
        self.tmp, self.processes = tmp, processes
        self.port = free_port()
        self.config = tmp / ("%s.yaml" % name)
        self.config.write_text(
            "listen: \"127.0.0.1:%d\"\n"
            "state_dir: %s\n"
            "sources:\n"
            "  - name: %s\n"
            "    files: [\"%s\"]\n"
            "    format: istio\n"
            "    start_at: beginning\n"
            "follow:\n"
            "  rescan_interval: %s\n"
            "  checkpoint_interval: %s\n" % (self.port, state_dir, SOURCE, logs_glob, rescan, checkpoint))
        argv = [BIN, "run", "--config", self.config, "--log-target", "stderr", "--log-level", "info"]
        if nofile is not None:
            # prlimit execs flagwatch: the PID stays the daemon's.
            argv = ["prlimit", "--nofile=%d:%d" % nofile, "--"] + argv
        self.log_path = tmp / ("%s.log" % name)
        self.process = processes.start(argv, self.log_path)
        self.pid = self.process.pid

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def context(self):
        return "exit status %s\n%s" % (self.process.poll(), log_tail(self.log_path, 40))

    def wait_ready(self, timeout=20.0):
        def ready():
            if self.process.poll() is not None:
                raise AssertionError("flagwatch exited with status %s" % self.process.returncode)
            return http_get(self.url("/-/ready"), timeout=2.0)[0] == 200
        return poll_until(ready, timeout, "flagwatch run answers /-/ready with 200", context=self.context)

    def samples(self, timeout=5.0):
        status, body = http_get(self.url("/metrics"), timeout=timeout)
        assert status == 200, "GET /metrics: %s" % status
        return metric_samples(body.decode())

    def lines_total(self):
        return self.samples().get('flagwatch_lines_total{source="%s"}' % SOURCE, 0)

    def error_count(self, kind, samples=None):
        samples = samples if samples is not None else self.samples()
        return samples.get('flagwatch_source_errors_total{source="%s",kind="%s"}' % (SOURCE, kind), 0)

    def log_text(self):
        return self.log_path.read_text(errors="replace")

    def stop(self, grace=15.0):
        return self.processes.stop(self.process, signal.SIGTERM, grace=grace)
