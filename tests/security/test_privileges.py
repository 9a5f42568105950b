"""What a container's process may do: capabilities, no_new_privs, user namespaces.

Capabilities: the five sets are exactly the config's (capabilities.masks -> the exec
stage's change_identity/set_capabilities); the inheritable set stays empty unless the
config asks (CVE-2022-29162: runc used to fill it, so a non-root program exec'ing a file
with inheritable file capabilities gained them); ambient capabilities are raised only when
also permitted and inheritable; an unknown name is a warning, not an error.
User namespaces: the maps are written by the parent, host files of unmapped ids show as
the overflow id, default devices are bind mounts (no mknod), sysfs mounts with a network
namespace of the container's own, and `pyrunc spec --rootless` is a valid, runnable config.
"""

import json
import os

import pyrunc_testlib as lib
from ociruntime.config import parse_config
from ociruntime.libcontainer.capabilities import BITS

STATUS_SCRIPT = "cat /proc/self/status"


def status_fields(text):
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def mask(*names):
    value = 0
    for name in names:
        value |= 1 << BITS[name]
    return value


def caps_of(status):
    return {key: int(status[key], 16) for key in ("CapInh", "CapPrm", "CapEff", "CapBnd",
                                                  "CapAmb")}


def test_default_root_capabilities_exact(runtime, bundle):
    """Defence: stage change_identity drops every bounding capability not listed; the
    inheritable and ambient sets stay empty (CVE-2022-29162)."""
    bundle.sh(STATUS_SCRIPT)
    caps = caps_of(status_fields(runtime.sh(bundle, STATUS_SCRIPT)))
    default = mask("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")
    assert caps == {"CapInh": 0, "CapPrm": default, "CapEff": default, "CapBnd": default,
                    "CapAmb": 0}, {k: hex(v) for k, v in caps.items()}


def test_non_root_capability_sets_exact(runtime, bundle):
    """Defence: capset with the config's exact sets; for a non-root program (no file
    capabilities) execve keeps the ambient set as permitted/effective, and the inheritable
    set is exactly the config's."""
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    bundle.process["capabilities"] = {
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"],
        "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "effective": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_NET_BIND_SERVICE"],
    }
    caps = caps_of(status_fields(runtime.sh(bundle, STATUS_SCRIPT)))
    assert caps == {
        "CapInh": mask("CAP_KILL", "CAP_NET_BIND_SERVICE"),
        "CapPrm": mask("CAP_NET_BIND_SERVICE"),
        "CapEff": mask("CAP_NET_BIND_SERVICE"),
        "CapBnd": mask("CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"),
        "CapAmb": mask("CAP_NET_BIND_SERVICE"),
    }, {k: hex(v) for k, v in caps.items()}


def test_non_root_without_inheritable_gets_nothing(runtime, bundle):
    """CVE-2022-29162.  Defence: no inheritable set unless asked, so a non-root process
    ends with empty permitted/effective/inheritable sets even though the config grants
    root-like permitted and effective sets; an ambient capability that is not inheritable
    is not raised (the kernel's rule, applied best effort as runc does)."""
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    caps = bundle.process["capabilities"]
    caps["ambient"] = ["CAP_NET_RAW"]
    for name in ("bounding", "permitted", "effective"):
        caps[name] = sorted(set(caps[name]) | {"CAP_NET_RAW", "CAP_DAC_OVERRIDE"})
    got = caps_of(status_fields(runtime.sh(bundle, STATUS_SCRIPT)))
    assert got["CapInh"] == 0 and got["CapPrm"] == 0 and got["CapEff"] == 0, got
    assert got["CapAmb"] == 0, got
    assert got["CapBnd"] == mask(*caps["bounding"])


def test_unknown_capability_warns_and_continues(runtime, bundle):
    """Defence: capabilities.masks: an unknown name is logged as a warning (runtime-spec:
    MUST log, SHOULD NOT fail) and skipped; the known ones still apply.  One warning line
    names every unknown name once, sorted, as runc 1.1's."""
    caps = bundle.process["capabilities"]
    for name in ("bounding", "effective", "permitted"):
        caps[name] = list(caps[name]) + ["CAP_NOT_A_CAPABILITY", "cap_kill"]
    caps["ambient"] = ["CAP_NOT_A_CAPABILITY"]
    bundle.sh(STATUS_SCRIPT)
    result = runtime.run_container(bundle)
    assert result.returncode == 0, result
    assert result.stderr.splitlines() == [
        "pyrunc: warning: process.capabilities: ignoring unknown or unavailable "
        "capabilities: [CAP_NOT_A_CAPABILITY cap_kill]"], result.stderr
    got = caps_of(status_fields(result.stdout))
    assert got["CapBnd"] == mask("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")


def test_no_new_privileges(runtime, bundle):
    """Defence: the stage sets PR_SET_NO_NEW_PRIVS when asked, and only then."""
    bundle.process["noNewPrivileges"] = True
    assert status_fields(runtime.sh(bundle, STATUS_SCRIPT))["NoNewPrivs"] == "1"
    bundle.process["noNewPrivileges"] = False
    assert status_fields(runtime.sh(bundle, STATUS_SCRIPT))["NoNewPrivs"] == "0"


def userns(bundle, host_id=100000, size=65536):
    bundle.linux["namespaces"].append({"type": "user"})
    bundle.linux["uidMappings"] = [{"containerID": 0, "hostID": host_id, "size": size}]
    bundle.linux["gidMappings"] = [{"containerID": 0, "hostID": host_id, "size": size}]


def test_user_namespace_maps_and_overflow_ids(runtime, bundle, scratch):
    """Defence: namespaces.write_id_maps (the parent writes the maps): the container's root
    is host uid 100000; host files of ids outside the map (the rootfs and a bind-mounted
    host file, all owned by host root) show as the overflow id, and writing to them fails."""
    host_file = os.path.join(scratch.path, "host-root-file")
    with open(host_file, "w") as f:
        f.write("root's\n")
    os.chmod(host_file, 0o644)
    bundle.mount("/tmp/hostfile", None, host_file, ["bind", "rw"])
    userns(bundle)
    out = runtime.sh(bundle, "cat /proc/self/uid_map /proc/self/gid_map; "
                             "stat -c %u:%g /bin/busybox /tmp/hostfile; "
                             "echo x >> /tmp/hostfile && echo WROTE; id -u")
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert lines[0] == "0 100000 65536" and lines[1] == "0 100000 65536", out
    assert lines[2] == "65534:65534" and lines[3] == "65534:65534", out
    assert "WROTE" not in lines and lines[-1] == "0", out
    with open(host_file) as f:
        assert f.read() == "root's\n"


def test_user_namespace_default_devices_are_bind_mounts(runtime, bundle):
    """Defence: Rootfs.create_default_devices binds the host's devices in a user
    namespace (mknod is not allowed there); the container cannot mknod either."""
    userns(bundle)
    out = runtime.sh(bundle, "for d in null zero full random urandom tty; do "
                             "grep -c \" /dev/$d \" /proc/self/mountinfo; done; "
                             "stat -c '%F %t:%T' /dev/null; "
                             "mknod /dev/shm/mem c 1 1 && echo MKNOD-OK; true")
    lines = out.splitlines()
    assert lines[:6] == ["1"] * 6, out
    assert lines[6] == "character special file 1:3", out
    assert "MKNOD-OK" not in out


def test_user_namespace_with_netns_mounts_sysfs(runtime, bundle):
    """Defence: none needed, a capability: sysfs may be mounted in a user namespace when
    the container has a network namespace of its own (the default config's /sys)."""
    userns(bundle)
    assert any(ns["type"] == "network" for ns in bundle.linux["namespaces"])
    out = runtime.sh(bundle, "stat -f -c %T /sys; grep ' /sys ' /proc/self/mountinfo")
    assert out.splitlines()[0] == "sysfs", out
    assert " - sysfs " in out


def test_rootless_spec_is_valid_and_runs(runtime, make_bundle, scratch, pyrunc_bin):
    """`pyrunc spec --rootless` parses with the runtime's own config model and runs when
    its mapping points at a real unprivileged host id (here 100000, run as root)."""
    spec_dir = os.path.join(scratch.path, "rootless-spec")
    os.mkdir(spec_dir)
    runtime.run("spec", "--rootless", "--bundle", spec_dir)
    with open(os.path.join(spec_dir, "config.json")) as f:
        doc = json.load(f)
    cfg = parse_config(doc)
    assert any(ns.type == "user" for ns in cfg.linux.namespaces)
    assert cfg.linux.uid_mappings and cfg.linux.gid_mappings
    bundle = make_bundle()
    doc["root"] = {"path": "rootfs", "readonly": True}
    doc["process"]["terminal"] = False
    for key in ("uidMappings", "gidMappings"):
        for m in doc["linux"][key]:
            m["hostID"] = 100000
    bundle.config = doc
    out = runtime.sh(bundle, "id -u; cat /proc/self/uid_map; stat -c %u /proc/self")
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert lines[0] == "0", out
    assert lines[1].startswith("0 100000 "), out
    lib.assert_nothing_left(runtime, bundle, runtime.ids[-1])
