"""features.md / features-linux.md: what `pyrunc features` lists, pyrunc really does.

Each test takes one part of the features document and uses every entry it lists in a real
container (or, for what the build reports as not enabled, shows that a config asking for
it is refused rather than ignored).
"""

import json
import os

import pytest

from pyrunc_testlib import assert_error, assert_nothing_left

# idmapped mounts need a user namespace's maps: tests/engine/test_mounts_devices.py
NOT_STANDALONE = {"idmap", "ridmap"}


@pytest.fixture(scope="module")
def features(pyrunc_bin):
    import subprocess

    out = subprocess.run([pyrunc_bin, "features"], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return json.loads(out)


def _nulls(value, path="features"):
    if value is None:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _nulls(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _nulls(v, f"{path}[{i}]")]
    return []


def test_no_property_is_null_and_annotations_are_strings(features):
    # "null MUST NOT be read as 0/false/...": pyrunc leaves a property out instead
    assert _nulls(features) == []
    annotations = features.get("annotations", {})
    assert annotations and all(isinstance(k, str) and isinstance(v, str)
                               for k, v in annotations.items())
    assert not any(k.startswith("org.opencontainers.") for k in annotations)
    unsafe = features.get("potentiallyUnsafeConfigAnnotations", [])
    assert isinstance(unsafe, list) and all(isinstance(k, str) for k in unsafe)


def test_every_listed_mount_option_is_accepted(features, runtime, bundle):
    options = [o for o in features["mountOptions"] if o not in NOT_STANDALONE]
    src = os.path.join(bundle.path, "bind-src")
    os.mkdir(src)
    for i, option in enumerate(options):
        if option in ("bind", "rbind"):
            bundle.mount(f"/opt/m{i}", "bind", src, [option])
        elif option == "remount":  # changes the flags of the bind just made
            bundle.mount(f"/opt/m{i}", "bind", src, ["bind", "remount", "ro"])
        else:
            bundle.mount(f"/opt/m{i}", "tmpfs", "tmpfs", [option])
    out = runtime.sh(bundle, "grep -c ' /opt/m' /proc/self/mountinfo")
    assert int(out) >= len(options)


def test_every_listed_namespace_is_made(features, runtime, bundle):
    listed = features["linux"]["namespaces"]
    types = {ns["type"] for ns in bundle.linux["namespaces"]}
    for kind in listed:
        if kind not in types:
            bundle.linux["namespaces"].append({"type": kind})
    if "user" in listed:
        bundle.linux["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
        bundle.linux["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
    files = {"cgroup": "cgroup", "ipc": "ipc", "mount": "mnt", "network": "net",
             "pid": "pid", "time": "time", "user": "user", "uts": "uts"}
    assert set(listed) <= set(files)
    script = "; ".join(f"readlink /proc/self/ns/{files[k]}" for k in listed)
    inside = runtime.sh(bundle, script).split()
    host = [os.readlink(f"/proc/self/ns/{files[k]}") for k in listed]
    same = [k for k, a, b in zip(listed, inside, host, strict=True) if a == b]
    assert same == [], f"namespaces shared with the host: {same}"


def test_every_listed_capability_is_recognised(features, runtime, bundle):
    """Each listed capability the host can grant ends up in the container's sets; one it
    cannot (no CAP_SYS_RESOURCE here) is named in a warning or an error, never a crash."""
    from ociruntime.libcontainer.capabilities import NAMES

    with open("/proc/self/status") as f:
        bounding = int(next(x for x in f if x.startswith("CapBnd:")).split()[1], 16)
    listed = features["linux"]["capabilities"]
    grantable = [c for c in listed if bounding >> NAMES.index(c) & 1]
    caps = bundle.process["capabilities"]
    for name in ("bounding", "effective", "permitted"):
        caps[name] = grantable
    out = runtime.sh(bundle, "grep CapEff /proc/self/status")
    want = sum(1 << NAMES.index(c) for c in grantable)
    assert int(out.split()[1], 16) == want


def test_every_listed_seccomp_action_operator_and_arch_loads(features, runtime, bundle):
    seccomp = features["linux"]["seccomp"]
    assert seccomp["enabled"] is True
    assert set(seccomp["supportedFlags"]) <= set(seccomp["knownFlags"])
    # one rarely used syscall per action (never called by `echo`), every operator on one
    rare = ["acct", "add_key", "bpf", "clock_adjtime", "delete_module", "fanotify_init",
            "init_module", "kexec_load", "lookup_dcookie", "mbind", "move_pages"]
    actions = [a for a in seccomp["actions"] if a != "SCMP_ACT_NOTIFY"]  # needs a listener
    assert len(actions) <= len(rare)
    rules = [{"names": [rare[i]], "action": a} for i, a in enumerate(actions)]
    for j, op in enumerate(seccomp["operators"]):
        arg = {"index": 0, "value": 1 + j, "op": op}
        if op == "SCMP_CMP_MASKED_EQ":
            arg["valueTwo"] = 1
        rules.append({"names": ["personality"], "action": "SCMP_ACT_ERRNO", "args": [arg]})
    native = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    bundle.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                               "architectures": native, "syscalls": rules}
    assert runtime.sh(bundle, "echo loaded").split() == ["loaded"]


def test_every_listed_seccomp_arch_is_recognised(features, runtime, make_bundle):
    """A filter for this x86-64 host can also hold the archs of the same byte order; for
    the others libseccomp refuses the mix (EDOM). Either way the name is known: it runs,
    or the error names the arch and libseccomp's reason, never "unknown"."""
    for arch in features["linux"]["seccomp"]["archs"]:
        bundle = make_bundle(f"arch-{arch.lower()}")
        bundle.linux["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", arch],
            "syscalls": [{"names": ["acct"], "action": "SCMP_ACT_ERRNO"}]}
        result = runtime.run_container(bundle)
        if result.returncode != 0:
            line = assert_error(result, arch, "libseccomp")
            assert "unknown" not in line.lower(), line
        assert_nothing_left(runtime, bundle, result.cid)


def test_every_listed_memory_policy_mode_and_flag_is_accepted(features, runtime, make_bundle):
    policy = features["linux"]["memoryPolicy"]
    for mode in policy["modes"]:
        bundle = make_bundle(f"mpol-{mode.lower()}")
        nodes = None if mode in ("MPOL_DEFAULT", "MPOL_LOCAL") else "0"
        bundle.linux["memoryPolicy"] = {"mode": mode, **({"nodes": nodes} if nodes else {})}
        assert runtime.sh(bundle, "echo ok").split() == ["ok"], mode
    for flag in policy["flags"]:
        bundle = make_bundle(f"mpolf-{flag.lower()}")
        bundle.linux["memoryPolicy"] = {"mode": "MPOL_BIND", "nodes": "0", "flags": [flag]}
        result = runtime.run_container(bundle)
        # accepted: it runs, or the kernel's own refusal of the combination is reported
        assert result.returncode == 0 or "memoryPolicy" in result.stderr, result.stderr
        assert_nothing_left(runtime, bundle, result.cid)


def test_what_features_reports_as_disabled_is_refused_not_ignored(features, runtime, bundle):
    linux = features["linux"]
    assert linux["cgroup"]["systemd"] is False
    assert linux["intelRdt"]["enabled"] is False
    bundle.linux["intelRdt"] = {"closID": "pyrunc"}
    bundle.write()
    cid = runtime.new_id()
    assert_error(runtime.run("create", "--bundle", bundle.path, cid, check=False), "intelRdt")
    assert_nothing_left(runtime, bundle, cid)
    assert linux["apparmor"]["enabled"] is False
    del bundle.linux["intelRdt"]
    bundle.process["apparmorProfile"] = "pyrunc-test"
    bundle.write()
    cid = runtime.new_id()
    assert_error(runtime.run("create", "--bundle", bundle.path, cid, check=False), "AppArmor")
    assert_nothing_left(runtime, bundle, cid)


def test_the_document_validates_against_the_features_schema(features):
    """features-schema.json + features-linux.json (specs/features-schema.json); and the
    document must not carry properties newer than its ociVersionMax (additionalProperties
    is false throughout)."""
    import pathlib

    jsonschema = pytest.importorskip("jsonschema")
    path = pathlib.Path(__file__).resolve().parent.parent / "specs" / "features-schema.json"
    schema = json.loads(path.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    errors = [e.message for e in cls(schema).iter_errors(features)]
    assert errors == []
    broken = json.loads(json.dumps(features))
    broken["linux"]["cgroup"]["v3"] = True
    assert list(cls(schema).iter_errors(broken)), "the schema must catch unknown properties"
