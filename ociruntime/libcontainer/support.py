"""Config fields this build parses but does not implement yet: refused, never ignored.

A runtime that silently skips a seccomp profile or a memory limit gives a container less
isolation than its config asked for; the spec says an unsupported value MUST be an error.
Each entry names the JSON path, so the user sees exactly what to drop.
"""

import posix

from ociruntime import paths
from ociruntime.errors import PyruncError
from ociruntime.libcontainer.mountopts import unsupported as unsupported_mount_options


def _refuse(path, what="is not supported yet"):
    raise PyruncError(f"{path}: {what}")


def check_apparmor(proc, path="process.apparmorProfile"):
    if proc.apparmor_profile:
        if not _apparmor_enabled():
            _refuse(path, "AppArmor is not enabled on this host")
        _refuse(path, "AppArmor profiles are not supported yet")


def check_exec_process(proc):
    """exec's process (--process FILE, or --apparmor and --process-label) as create's: an
    AppArmor profile is refused, never dropped; an SELinux label only means something
    where SELinux is on (there it is refused)."""
    check_apparmor(proc)
    if proc.selinux_label and _selinux_enabled():
        _refuse("process.selinuxLabel", "SELinux labels are not supported yet")


def check_supported(cfg, cgroup_v2):
    proc = cfg.process
    if proc is not None:
        if proc.scheduler is not None or proc.exec_cpu_affinity is not None:
            from ociruntime.libcontainer.procattrs import check as check_process

            check_process(proc)
        check_apparmor(proc)
        if proc.selinux_label and _selinux_enabled():
            _refuse("process.selinuxLabel", "SELinux labels are not supported yet")
    for index, mount in enumerate(cfg.mounts):
        bad = unsupported_mount_options(mount.options)
        if bad:
            _refuse(f"mounts[{index}].options", f"{bad[0]!r} is not supported yet")
    linux = cfg.linux
    _check_id_map_sizes(cfg)
    if linux.mount_label and _selinux_enabled():
        _refuse("linux.mountLabel", "SELinux labels are not supported yet")
    from ociruntime.config import idmapped

    if any(idmapped(m) for m in cfg.mounts) or linux.sysctl:
        from ociruntime.libcontainer import idmap, sysctl
        from ociruntime.libcontainer.namespaces import NamespacePlan

        ns_plan = NamespacePlan(linux.namespaces)
        idmap.check(cfg, ns_plan)
        sysctl.check(cfg, ns_plan)
    if linux.seccomp is not None:
        from ociruntime.libcontainer.seccomp import check

        check(linux.seccomp)
    if linux.net_devices:
        from ociruntime.libcontainer import netdev
        from ociruntime.libcontainer.namespaces import NamespacePlan

        netdev.check(cfg, NamespacePlan(linux.namespaces))
    if linux.intel_rdt is not None:
        if not _resctrl_mounted():
            _refuse("linux.intelRdt", "no resctrl filesystem is mounted on this host")
        _refuse("linux.intelRdt")
    if linux.memory_policy is not None:
        from ociruntime.libcontainer.procattrs import memory_policy

        memory_policy(linux.memory_policy)  # checked now; set by the init
    # the resources are applied by the cgroup managers, which fail on a controller or file
    # this host lacks (device rules on v2: an eBPF program, cgroups/devices_bpf.py)
    # a container without a mount namespace of its own mounts in the runtime's (as runc
    # does), chroots instead of pivot_root, and delete detaches those mounts


def _check_id_map_sizes(cfg):
    """The kernel takes a uid_map or gid_map in one write shorter than a page: 340 lines
    of long ids are longer than that (the config's rules are the kernel's others)."""
    from ociruntime.libcontainer.namespaces import format_id_map

    maps = [(f"linux.{key}", getattr(cfg.linux, attr))
            for key, attr in (("uidMappings", "uid_mappings"), ("gidMappings", "gid_mappings"))]
    for index, mount in enumerate(cfg.mounts):
        maps += [(f"mounts[{index}].uidMappings", mount.uid_mappings),
                 (f"mounts[{index}].gidMappings", mount.gid_mappings)]
    page = posix.sysconf("SC_PAGE_SIZE")
    for path, mappings in maps:
        size = len(format_id_map(mappings)) if len(mappings) > 80 else 0  # 80 lines fit
        if size >= page:
            _refuse(path, f"its {len(mappings)} lines are {size} bytes as a map, and the "
                    f"kernel takes less than a page ({page} bytes)")


def _apparmor_enabled():
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


def _selinux_enabled():
    return paths.exists("/sys/fs/selinux/enforce")


def _resctrl_mounted():
    with open("/proc/self/mountinfo") as f:
        return any(" - resctrl " in line for line in f)


def _camel(name):
    head, *rest = name.split("_")
    name = head + "".join(part.capitalize() for part in rest)
    return name.replace("Io", "IO").replace("Cpu", "CPU")
