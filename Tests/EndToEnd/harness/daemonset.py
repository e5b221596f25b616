"""deploy/kubernetes/daemonset.yaml turned into `podman run` options, so that the container test
runs the image exactly as the DaemonSet would, and the deploy test can check that nothing in the
DaemonSet escapes that translation.

  load_daemonset()                     the parsed manifest
  flagwatch_container(daemonset)       the pod spec and the `flagwatch` container
  run_options(daemonset, sources)      podman options for the flagwatch container: user and
                                       groups, read-only root, capabilities, no-new-privileges,
                                       volume mounts (sources: volume name -> host path or podman
                                       volume), entrypoint; and its args
  init_options(daemonset, sources)     the same for the state-directory init container
  configmap_config()                   the ConfigMap's flagwatch.yaml text (not a copy)

A securityContext key or a volume field the translation does not know raises Untranslated: a new
setting in the DaemonSet must be added here (and so to what the container test runs) first.
"""
import json

import yaml

from harness import REPO

KUBERNETES = REPO / "deploy" / "kubernetes"


class Untranslated(ValueError):
    """A DaemonSet setting with no podman equivalent here."""


def load_daemonset():
    return yaml.safe_load((KUBERNETES / "daemonset.yaml").read_text())


def configmap_config():
    configmap = yaml.safe_load((KUBERNETES / "configmap.yaml").read_text())
    return configmap["data"]["flagwatch.yaml"]


def flagwatch_container(daemonset):
    pod = daemonset["spec"]["template"]["spec"]
    containers = [c for c in pod["containers"] if c["name"] == "flagwatch"]
    if len(containers) != 1:
        raise Untranslated("expected one container named flagwatch, found %d" % len(containers))
    return pod, containers[0]


# Pod-level keys: what each means for podman.
_POD_SECURITY = {"seccompProfile", "supplementalGroups", "runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup"}
_CONTAINER_SECURITY = {"runAsNonRoot", "runAsUser", "runAsGroup", "allowPrivilegeEscalation",
                       "readOnlyRootFilesystem", "capabilities", "privileged"}


def _security_options(pod_context, context):
    unknown = set(pod_context) - _POD_SECURITY
    unknown |= set(context) - _CONTAINER_SECURITY
    if unknown:
        raise Untranslated("securityContext keys not translated to podman: %s" % sorted(unknown))
    if "fsGroup" in pod_context:
        raise Untranslated("fsGroup changes volume ownership; podman has no equivalent here")
    seccomp = pod_context.get("seccompProfile", {}).get("type", "RuntimeDefault")
    if seccomp != "RuntimeDefault":  # podman applies its default profile, the same idea
        raise Untranslated("seccompProfile %r" % seccomp)
    if context.get("privileged"):
        raise Untranslated("privileged")
    user = context.get("runAsUser", pod_context.get("runAsUser"))
    group = context.get("runAsGroup", pod_context.get("runAsGroup"))
    non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot", False))
    if user is None:
        raise Untranslated("runAsUser is not set: the image's USER would decide")
    if non_root and user == 0:
        raise Untranslated("runAsNonRoot with runAsUser 0 would not start")
    options = ["--user", "%d:%d" % (user, group if group is not None else 0)]
    for extra in pod_context.get("supplementalGroups", []):
        options += ["--group-add", str(extra)]
    if context.get("readOnlyRootFilesystem"):
        # Kubernetes mounts no tmpfs anywhere: neither does the test.
        options += ["--read-only", "--read-only-tmpfs=false"]
    if context.get("allowPrivilegeEscalation") is False:
        options += ["--security-opt", "no-new-privileges"]
    capabilities = context.get("capabilities", {})
    if set(capabilities) - {"drop", "add"}:
        raise Untranslated("capabilities keys %s" % sorted(set(capabilities) - {"drop", "add"}))
    for cap in capabilities.get("drop", []):
        options.append("--cap-drop=%s" % cap)
    for cap in capabilities.get("add", []):
        options.append("--cap-add=%s" % cap)
    return options


def _mount_options(pod, container, sources):
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    options = []
    for mount in container.get("volumeMounts", []):
        unknown = set(mount) - {"name", "mountPath", "readOnly"}
        if unknown:
            raise Untranslated("volumeMount keys %s" % sorted(unknown))
        if mount["name"] not in volumes:
            raise Untranslated("volumeMount %r has no volume" % mount["name"])
        if mount["name"] not in sources:
            raise Untranslated("no host source given for volume %r" % mount["name"])
        spec = "%s:%s" % (sources[mount["name"]], mount["mountPath"])
        if mount.get("readOnly"):
            spec += ":ro"
        options += ["--volume", spec]
    return options


def _entrypoint(container):
    options = []
    if "command" in container:
        options += ["--entrypoint", json.dumps(container["command"])]
    return options, list(container.get("args", []))


def run_options(daemonset, sources):
    """(podman run options, args) for the flagwatch container of the DaemonSet."""
    pod, container = flagwatch_container(daemonset)
    options = _security_options(pod.get("securityContext", {}), container.get("securityContext", {}))
    options += _mount_options(pod, container, sources)
    entrypoint, args = _entrypoint(container)
    return options + entrypoint, args


def init_options(daemonset, sources):
    """(podman run options, command) for the init container that prepares the state directory.
    Its image (busybox) is not available here; the caller runs the command in flagwatch's image."""
    pod = daemonset["spec"]["template"]["spec"]
    inits = pod.get("initContainers", [])
    if len(inits) != 1:
        raise Untranslated("expected one init container, found %d" % len(inits))
    init = inits[0]
    options = _security_options(pod.get("securityContext", {}), init.get("securityContext", {}))
    options += _mount_options(pod, init, sources)
    command = list(init.get("command", [])) + list(init.get("args", []))
    return options + ["--entrypoint", json.dumps(command[:1])], command[1:]
