"""A network namespace a test creates for its "pods", joined to the host by a veth pair.

  PodNetwork.create(prefix)   deletes what a killed earlier run left (its pid gone), then
                              `ip netns add`, a veth pair, 198.18.N.1/24 on the host end and the
                              pod addresses 198.18.N.2-.9 inside (RFC 2544's benchmarking range,
                              never routed off the machine; N: a /24 no route here covers yet).
                              No default route inside: the pods reach only the host end, on link.
                              Skips the test, with the reason, when the machine cannot create a
                              network namespace (no root, no CAP_NET_ADMIN)
  net.pod(i)                  the i-th pod address inside the namespace (i = 0 .. 7)
  net.exec_argv(argv)         `ip netns exec NS argv...` (ip execs it: the PID is the command's)
  net.drop_tcp_port(port)     nftables, inside the namespace: drop every TCP packet to `port`,
                              counted (`counter drop`): SYNs go unanswered, the connect times out
  net.dropped_packets(port)   that rule's packet counter
  net.delete()                `ip netns del` and the host end of the veth; idempotent

Nothing here touches an address outside the machine: the host end is a new interface of this
machine, the pods live in the namespace, and both are gone after delete().
"""
import os
import re
import shutil
import subprocess

import pytest

SUBNET_PREFIX = "198.18"      # RFC 2544 benchmarking range (198.18.0.0/15)
TIMEOUT = 20.0                # every ip / nft command


def run(argv, check=True, input=None):
    """Runs a command (bounded); returns its CompletedProcess. check: a failure raises
    RuntimeError with its stderr."""
    p = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=TIMEOUT, input=input,
                       stdin=None if input is not None else subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise RuntimeError("`%s` exited with %d: %s" % (" ".join(map(str, argv)), p.returncode,
                                                        (p.stderr or p.stdout).strip()))
    return p


def _free_subnet():
    """198.18.N with no route of this machine covering 198.18.N.0/24 (N from 10 up)."""
    routes = run(["ip", "-4", "route", "show", "table", "all"], check=False).stdout
    used = set(re.findall(r"\b198\.18\.(\d+)\.", routes))
    start = 10 + os.getpid() % 200
    for n in list(range(start, 250)) + list(range(10, start)):
        if str(n) not in used:
            return "%s.%d" % (SUBNET_PREFIX, n)
    pytest.fail("no free 198.18.N.0/24 for the test's network namespace: %s" % routes, pytrace=False)


def _delete_stale(prefix):
    """Deletes the namespaces (and host veth ends) an earlier test process left behind when it
    was killed before its teardown: named <prefix><pid>-ns, with that pid gone."""
    listing = run(["ip", "netns", "list"], check=False).stdout
    for name, pid in re.findall(r"^(%s(\d+)-ns)\b" % re.escape(prefix), listing, re.M):
        if not os.path.exists("/proc/%s" % pid):
            run(["ip", "netns", "del", name], check=False)
            run(["ip", "link", "del", "%s%sh" % (prefix, pid)], check=False)


class PodNetwork:
    def __init__(self, name, host_if, subnet):
        self.name, self.host_if, self.subnet = name, host_if, subnet
        self.host_address = subnet + ".1"
        self._nft_table = False

    @classmethod
    def create(cls, prefix="fwd"):
        missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
        if missing:
            pytest.fail("%s not installed: run `scripts/install-deps.sh test` (apt packages iproute2, nftables)"
                        % " and ".join(missing), pytrace=False)
        _delete_stale(prefix)
        tag = "%s%d" % (prefix, os.getpid())          # pid_max <= 4194304: interface names stay <= 15 bytes
        net = cls("%s-ns" % tag, "%sh" % tag, _free_subnet())
        probe = run(["ip", "netns", "add", net.name], check=False)
        if probe.returncode != 0:
            pytest.skip("cannot create a network namespace here (`ip netns add` as uid %d: %s)"
                        % (os.getuid(), probe.stderr.strip()))
        try:
            inner = "%sn" % tag
            run(["ip", "link", "add", net.host_if, "type", "veth", "peer", "name", inner, "netns", net.name])
            run(["ip", "addr", "add", net.host_address + "/24", "dev", net.host_if])
            run(["ip", "link", "set", net.host_if, "up"])
            ns = ["ip", "-n", net.name]
            run(ns + ["link", "set", "lo", "up"])
            for i in range(8):
                run(ns + ["addr", "add", "%s/24" % net.pod(i), "dev", inner])
            run(ns + ["link", "set", inner, "up"])
        except Exception:
            net.delete()
            raise
        return net

    def pod(self, i):
        assert 0 <= i < 8, i
        return "%s.%d" % (self.subnet, 2 + i)

    def exec_argv(self, argv):
        return ["ip", "netns", "exec", self.name, *[str(a) for a in argv]]

    def nft(self, script):
        return run(self.exec_argv(["nft", "-f", "-"]), input=script)

    def drop_tcp_port(self, port):
        """Every TCP packet to `port` in the namespace is dropped (and counted) on input."""
        if not self._nft_table:
            self.nft("table inet flagwatch_e2e {\n"
                     "  chain input { type filter hook input priority 0; policy accept; }\n}\n")
            self._nft_table = True
        self.nft("add rule inet flagwatch_e2e input tcp dport %d counter drop comment \"drop-%d\"\n"
                 % (port, port))

    def dropped_packets(self, port):
        out = run(self.exec_argv(["nft", "list", "chain", "inet", "flagwatch_e2e", "input"])).stdout
        m = re.search(r"tcp dport %d counter packets (\d+) bytes \d+ drop" % port, out)
        return int(m.group(1)) if m else None

    def delete(self):
        run(["ip", "netns", "del", self.name], check=False)   # takes the inner veth end with it
        run(["ip", "link", "del", self.host_if], check=False)  # gone with its peer; just in case
