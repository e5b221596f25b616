"""The container image, built by `make image` and run the way deploy/kubernetes/daemonset.yaml
runs it (see daemonset_container.py), with podman.

  base_image     module fixture: a Debian bookworm base without a registry: `mmdebstrap
                 --variant=minbase bookworm` into a tarball kept in the cache directory
                 ${FLAGWATCH_TEST_CACHE:-/var/cache/flagwatch-tests}, `podman import`ed once
  image          module fixture: `make image IMAGE=... BASE=<base_image> CONTAINER_TOOL=...`
  envoy_lines    module fixture: Istio TEXT lines from a real Envoy 1.40 run (envoy_harness)
                 with the ground truth: Envoy's own counters must equal an independent parse
  Pod            a host directory laid out like /var/log/pods/<ns>_<pod>_<uid>/istio-proxy/
                 with CRI-wrapped lines, files root-owned mode 0640, rotated like the kubelet
  Podman         `podman run`/`stop`/`inspect` with this machine's needs (runc, explicit
                 ulimits); every container it starts is removed in teardown

Test modules import these helpers as `container_kit`: `from conftest import ...` would get
whichever conftest.py was imported first when several suites run together.
"""
import collections
import json
import os
import resource
import shlex
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from harness import REPO, envoy as envoy_harness  # noqa: F401 - REPO: the container tests import it here

CACHE_DIR = Path(os.environ.get("FLAGWATCH_TEST_CACHE") or "/var/cache/flagwatch-tests")
# crun (podman's default) needs cgroup v2 or CAP_SYS_RESOURCE, which these machines lack.
CONTAINER_TOOL = shlex.split(os.environ.get("CONTAINER_TOOL") or "podman --runtime runc")
MMDEBSTRAP_ARGS = ("--variant=minbase", "bookworm")
IMAGE = "localhost/flagwatch:e2e"
BUILD_TIMEOUT = 3600.0     # make image builds the release binary first when it is missing
COMMAND_TIMEOUT = 120.0


def require_tool(name):
    """Missing is a failure (scripts/install-deps.sh test installs it), not a skip."""
    path = shutil.which(name)
    if path is None:
        pytest.fail("%s is missing: scripts/install-deps.sh test installs it" % name)
    return path


def run(argv, timeout=COMMAND_TIMEOUT, check=True, **kw):
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, **kw)
    if check and result.returncode != 0:
        pytest.fail("%s exited %d\n%s\n%s" % (shlex.join(map(str, argv)), result.returncode,
                                              result.stdout[-3000:], result.stderr[-3000:]), pytrace=False)
    return result


def podman(*args, timeout=COMMAND_TIMEOUT, check=True):
    return run(CONTAINER_TOOL + [str(a) for a in args], timeout=timeout, check=check)


# --------------------------------------------------------------------------- images

def image_size(name):
    return int(podman("image", "inspect", "--format", "{{.Size}}", name).stdout.strip())


# --------------------------------------------------------------------------- Envoy lines

class EnvoyLines:
    """Istio TEXT lines from a real Envoy run and the counts of any slice of them."""

    def __init__(self, lines, envoy_expected):
        self.lines = lines
        self.envoy_expected = envoy_expected

    @staticmethod
    def counts(lines):
        """{(cluster, flag): n} and {(cluster, code class): n} by the harness' independent parser."""
        flags, codes = collections.Counter(), collections.Counter()
        for line in lines:
            cluster, code, field = envoy_harness.parse_text(line)
            codes[(cluster, envoy_harness.code_class(code))] += 1
            if field and field != "-":
                for flag in field.split(","):
                    flags[(cluster, flag)] += 1
        return dict(flags), dict(codes)


# --------------------------------------------------------------------------- the node's pod logs

class Pod:
    """/var/log/pods/<namespace>_<pod>_<uid>/istio-proxy/0.log under `root`, written as a container
    runtime writes it: CRI lines, root-owned files of mode 0640, directories 0755."""

    def __init__(self, root, namespace="shop", name="checkout-7d9f8", uid="0c6c1b7e-4c1a-4f7e-9e0f-3a1b2c3d4e5f"):
        self.root = root
        self.directory = root / ("%s_%s_%s" % (namespace, name, uid)) / "istio-proxy"
        self.directory.mkdir(parents=True)
        for path in (root, self.directory.parent, self.directory):
            os.chmod(path, 0o755)
        self.log = self.directory / "0.log"
        self._create(self.log)
        self.clock = 1_796_000_000.0

    @staticmethod
    def _create(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o640)
        os.close(fd)
        os.chown(path, 0, 0)
        os.chmod(path, 0o640)

    def _cri(self, line):
        self.clock += 0.001
        seconds = int(self.clock)
        nanos = int(round((self.clock - seconds) * 1e9))
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + ".%09dZ" % nanos
        return "%s stdout F %s\n" % (stamp, line)

    def append(self, lines, path=None):
        with open(path or self.log, "a") as log:
            log.write("".join(self._cri(line) for line in lines))

    def rotate(self):
        """The kubelet's rotation: 0.log renamed to 0.log.<timestamp>, a new 0.log; returns the
        rotated path (the runtime may still write a few lines there before it reopens)."""
        rotated = self.directory / ("0.log.%s" % time.strftime("%Y%m%d-%H%M%S", time.gmtime(self.clock)))
        os.rename(self.log, rotated)
        self._create(self.log)
        return rotated


# --------------------------------------------------------------------------- podman

def _ulimits():
    """nofile and nproc at or below this process' hard limits (podman must set them explicitly
    here: raising them needs CAP_SYS_RESOURCE)."""
    options = []
    for name, which, want in (("nofile", resource.RLIMIT_NOFILE, 65536), ("nproc", resource.RLIMIT_NPROC, 4096)):
        hard = resource.getrlimit(which)[1]
        value = want if hard == resource.RLIM_INFINITY else min(want, hard)
        options += ["--ulimit", "%s=%d:%d" % (name, value, value)]
    return options


class Podman:
    """Containers of one test, removed (podman rm -f) in teardown."""

    def __init__(self):
        self.names = []

    def run_detached(self, image, options, args, name=None):
        name = name or "flagwatch-e2e-%s" % uuid.uuid4().hex[:10]
        self.names.append(name)
        podman("run", "--detach", "--name", name, *_ulimits(), *options, image, *args)
        return name

    def run_once(self, image, options, args):
        """Runs to completion (the init container); returns the exit status and output."""
        name = "flagwatch-e2e-init-%s" % uuid.uuid4().hex[:10]
        self.names.append(name)
        result = podman("run", "--name", name, *_ulimits(), *options, image, *args, check=False, timeout=120)
        return result

    @staticmethod
    def inspect(name):
        return json.loads(podman("container", "inspect", name).stdout)[0]

    @staticmethod
    def logs(name):
        result = podman("logs", name, check=False)
        return "--- podman logs %s ---\n%s%s" % (name, result.stdout[-4000:], result.stderr[-4000:])

    def stop(self, name, grace):
        """`podman stop -t grace` (SIGTERM, SIGKILL after grace); returns (seconds, exit code)."""
        started = time.monotonic()
        podman("stop", "--time", str(grace), name, timeout=grace + 60)
        return time.monotonic() - started, self.inspect(name)["State"]["ExitCode"]

    def remove_all(self):
        for name in self.names:
            podman("rm", "--force", "--time", "0", name, check=False)
        self.names = []

