"""Config fields this build parses but does not implement yet: refused, never ignored.

A runtime that silently skips a seccomp profile or a memory limit gives a container less
isolation than its config asked for; the spec says an unsupported value MUST be an error.
Each entry names the JSON path, so the user sees exactly what to drop.
"""

from ociruntime.errors import PyruncError
from ociruntime.libcontainer.mountopts import unsupported as unsupported_mount_options


def _refuse(path, what="is not supported yet"):
    raise PyruncError(f"{path}: {what}")


def check_supported(cfg, cgroup_v2):
    proc = cfg.process
    if proc is not None:
        for field in ("scheduler", "io_priority", "exec_cpu_affinity"):
            if getattr(proc, field) is not None:
                _refuse(f"process.{_camel(field)}")
        if proc.apparmor_profile:
            _refuse("process.apparmorProfile", "AppArmor is not supported yet")
    for index, mount in enumerate(cfg.mounts):
        bad = unsupported_mount_options(mount.options)
        if bad:
            _refuse(f"mounts[{index}].options", f"{bad[0]!r} is not supported yet")
        if mount.uid_mappings or mount.gid_mappings:
            _refuse(f"mounts[{index}].uidMappings", "idmapped mounts are not supported yet")
    linux = cfg.linux
    if linux.seccomp is not None:
        from ociruntime.libcontainer.seccomp import check

        check(linux.seccomp)
    for field in ("devices", "net_devices", "sysctl"):
        if getattr(linux, field):
            _refuse(f"linux.{_camel(field)}")
    for field in ("personality", "intel_rdt", "memory_policy"):
        if getattr(linux, field) is not None:
            _refuse(f"linux.{_camel(field)}")
    res = linux.resources
    # the other resources are applied by the cgroup managers, which fail on a controller
    # or file this host lacks
    if res is not None:
        if res.devices and cgroup_v2:
            _refuse("linux.resources.devices", "device rules on cgroup v2 are not supported yet")
    if not any(ns.type == "mount" for ns in linux.namespaces):
        _refuse("linux.namespaces", "a container without its own mount namespace is not "
                "supported (its mounts would land in the host's)")


def _camel(name):
    head, *rest = name.split("_")
    name = head + "".join(part.capitalize() for part in rest)
    return name.replace("Io", "IO").replace("Cpu", "CPU")
