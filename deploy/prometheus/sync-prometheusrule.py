#!/usr/bin/env python3
"""Writes deploy/kubernetes/prometheusrule.yaml from deploy/prometheus/flagwatch-rules.yml: the
rule file's `groups:` (comments included) indented under the PrometheusRule's `spec:`.

    python3 deploy/prometheus/sync-prometheusrule.py          # rewrite it
    python3 deploy/prometheus/sync-prometheusrule.py --check  # exit 1 if it is out of date
"""
import sys
from pathlib import Path

DEPLOY = Path(__file__).resolve().parent.parent
RULES = DEPLOY / "prometheus" / "flagwatch-rules.yml"
TARGET = DEPLOY / "kubernetes" / "prometheusrule.yaml"

HEAD = """\
# For the Prometheus Operator: the groups of deploy/prometheus/flagwatch-rules.yml, verbatim
# (see its header for what the rules do and how the alerts differ from the daemon's own).
# Keep spec.groups equal to that file's groups (Tests/EndToEnd/deploy checks it); to copy it:
#   python3 deploy/prometheus/sync-prometheusrule.py
# Your Prometheus must select this PrometheusRule (ruleSelector / ruleNamespaceSelector).
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: flagwatch
  namespace: flagwatch
  labels:
    app.kubernetes.io/name: flagwatch
spec:
"""


def render():
    text = RULES.read_text()
    start = text.index("\ngroups:\n") + 1
    return HEAD + "".join(("  " + line if line.strip() else line) for line in text[start:].splitlines(True))


def main():
    wanted = render()
    if "--check" in sys.argv[1:]:
        if TARGET.read_text() != wanted:
            print("%s is out of date: run %s" % (TARGET, Path(__file__).name), file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
