"""Fixtures of the container tests; the helpers are in harness/container.py."""
import collections
import hashlib
import shlex
import subprocess
import uuid

import pytest

from harness import envoy as envoy_harness
from harness.container import (BUILD_TIMEOUT, CACHE_DIR, CONTAINER_TOOL, IMAGE, MMDEBSTRAP_ARGS, REPO, EnvoyLines,
                               Podman, podman, require_tool, run)
from harness.flagwatch import release_make_args
from harness.processes import log_tail


@pytest.fixture(scope="session")
def base_image():
    """A minbase Debian bookworm image, built once per machine (the tarball is cached)."""
    require_tool(CONTAINER_TOOL[0])
    key = hashlib.sha256(" ".join(MMDEBSTRAP_ARGS).encode()).hexdigest()[:12]
    name = "localhost/flagwatch-test-base:bookworm-minbase-%s" % key
    if podman("image", "exists", name, check=False).returncode == 0:
        return name
    tarball = CACHE_DIR / ("container-base-%s.tar" % key)
    if not tarball.exists():
        require_tool("mmdebstrap")
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        partial = tarball.with_suffix(".partial.tar")
        run(["mmdebstrap", *MMDEBSTRAP_ARGS, partial], timeout=900)
        partial.rename(tarball)
    podman("import", tarball, name, timeout=300)
    return name


@pytest.fixture(scope="session")
def image(base_image, tmp_path_factory):
    """`make image` on the test's base: builds the release binary (when needed) and the image."""
    log = tmp_path_factory.mktemp("image") / "make-image.log"
    with open(log, "wb") as out:
        result = subprocess.run(
            ["make", "--no-print-directory", *release_make_args(), "image", "IMAGE=" + IMAGE, "BASE=" + base_image,
             "CONTAINER_TOOL=" + shlex.join(CONTAINER_TOOL)],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT)
    if result.returncode != 0:
        pytest.fail("make image failed\n" + log_tail(log, 60), pytrace=False)
    return IMAGE


@pytest.fixture(scope="session")
def envoy_lines(tmp_path_factory):
    """Every scenario of envoy_harness (UF, UH, URX, NR, UO, UC, DC, ...) sent through a real
    Envoy 1.40; its Istio TEXT log is the input of the container test."""
    work = tmp_path_factory.mktemp("envoy")
    text_log, json_log = work / "istio.log", work / "istio.json.log"
    procs = envoy_harness.Procs()
    sent = collections.Counter()
    try:
        stack = envoy_harness.start_envoy(procs, work, envoy_harness.find_envoy(), text_log, json_log)
        for round_ in range(2):
            for scenario in envoy_harness.SCENARIOS:
                envoy_harness.send_chunk(scenario, 3, sent[scenario.name], stack.ports, stack.admin)
                sent[scenario.name] += 3
        envoy_harness.wait_for_stable_logs([text_log], sum(sent.values()))
        counters = envoy_harness.fetch_counters(stack.admin)
    finally:
        procs.stop_all()
    lines = [line for line in text_log.read_text().splitlines() if line]
    expected = envoy_harness.expected_counts(envoy_harness.SCENARIOS, dict(sent), counters)
    return EnvoyLines(lines, expected)


@pytest.fixture
def containers():
    kit = Podman()
    yield kit
    kit.remove_all()


@pytest.fixture
def state_volume():
    name = "flagwatch-e2e-state-%s" % uuid.uuid4().hex[:10]
    podman("volume", "create", name)
    yield name
    podman("volume", "rm", "--force", name, check=False)
