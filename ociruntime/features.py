"""`pyrunc features`: what this build of pyrunc supports (runtime-spec features.md).

It describes the implementation, not the host, so it is fixed here rather than probed.
A capability of the spec that pyrunc refuses today is reported as not enabled.
"""

from ociruntime import OCI_VERSION, __version__

HOOKS = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart",
         "poststop"]


def features():
    from ociruntime.libcontainer.capabilities import NAMES
    from ociruntime.libcontainer.mountopts import EXTENSIONS, FLAGS, PROPAGATION, RECURSIVE

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": HOOKS,
        "mountOptions": sorted(FLAGS) + sorted(PROPAGATION) + sorted(RECURSIVE)
        + list(EXTENSIONS),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": list(NAMES),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False,
                       "rdma": False},
            "seccomp": _seccomp(),
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "memoryPolicy": _memory_policy(),
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": True}},
            "netDevices": {"enabled": True},
        },
        "annotations": {"io.github.pyrunc.version": __version__},
        # no config annotation changes what pyrunc does
        "potentiallyUnsafeConfigAnnotations": [],
    }


def _memory_policy():
    from ociruntime.config import MEMORY_POLICY_FLAGS, MEMORY_POLICY_MODES

    return {"modes": list(MEMORY_POLICY_MODES), "flags": list(MEMORY_POLICY_FLAGS)}


def _seccomp():
    from ociruntime.libcontainer import seccomp

    return {
        "enabled": True,
        "actions": list(seccomp.ACTIONS),
        "operators": list(seccomp.OPERATORS),
        "archs": list(seccomp.ARCHES),
        "knownFlags": list(seccomp.KNOWN_FLAGS),
        "supportedFlags": list(seccomp.FLAGS),
    }
