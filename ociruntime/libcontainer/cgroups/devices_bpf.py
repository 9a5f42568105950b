"""Device rules on cgroup v2: an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE attached
to the container's cgroup, as runc and crun do (v2 has no devices.allow/deny files).

Python turns the rules into the program; the C helper only makes the bpf(2) call.  The
program sees, per device access, a bpf_cgroup_dev_ctx {access_type = access << 16 | type,
major, minor} and returns 1 (allow) or 0 (deny).  Rules are checked last first, so the
last matching rule wins; as with v1's devices.allow/deny, an allow rule covers an access
only if it grants every bit asked for (r, w, m), a deny rule if it names any of them.  No
match denies.
"""

import errno
import os
import struct

from ociruntime.errors import PyruncError

BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_PROG_QUERY = 16
PROG_NAME = b"pyrunc_devices"
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2

DEV_TYPES = {"b": 1, "c": 2}  # BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR
ACCESS_BITS = {"m": 1, "r": 2, "w": 4}  # BPF_DEVCG_ACC_MKNOD, _READ, _WRITE
FULL_ACCESS = 7

# instruction opcodes (linux/bpf.h, bpf_common.h)
LDX_MEM_W = 0x61      # BPF_LDX | BPF_MEM | BPF_W
ALU32_AND_K = 0x54    # BPF_ALU | BPF_AND | BPF_K
ALU32_RSH_K = 0x74    # BPF_ALU | BPF_RSH | BPF_K
ALU32_MOV_K = 0xB4    # BPF_ALU | BPF_MOV | BPF_K
ALU32_MOV_X = 0xBC    # BPF_ALU | BPF_MOV | BPF_X
JMP32_JNE_K = 0x56    # BPF_JMP32 | BPF_JNE | BPF_K
JMP32_JNE_X = 0x5E    # BPF_JMP32 | BPF_JNE | BPF_X
JMP32_JEQ_K = 0x16    # BPF_JMP32 | BPF_JEQ | BPF_K
JMP_EXIT = 0x95       # BPF_JMP | BPF_EXIT
NEXT = object()       # a jump to the next rule's block, resolved per block


def _insn(op, dst=0, src=0, off=0, imm=0):
    return (op, dst, src, off, imm)


def _encode(insns):
    return b"".join(struct.pack("<BBhi", op, (src << 4) | dst, off,
                                imm - (1 << 32) if imm >= 1 << 31 else imm)
                    for op, dst, src, off, imm in insns)


def default_rules():
    """runc's default allowed devices (after the config's rules, as on v1)."""
    from ociruntime.config import DeviceRule
    from ociruntime.libcontainer.cgroups.v1 import DEFAULT_ALLOW

    rules = []
    for entry in DEFAULT_ALLOW:
        kind, numbers, access = entry.split()
        major, minor = numbers.split(":")
        rules.append(DeviceRule(allow=True, type=kind,
                                major=None if major == "*" else int(major),
                                minor=None if minor == "*" else int(minor), access=access))
    return rules


def _block(rule):
    """The checks of one rule; each failed check jumps past the block."""
    checks = []
    kind = rule.type or "a"
    if kind != "a":
        if kind not in DEV_TYPES:
            raise PyruncError(f"linux.resources.devices: type {kind!r} cannot be expressed "
                              "on cgroup v2")
        checks.append(_insn(JMP32_JNE_K, dst=2, off=NEXT, imm=DEV_TYPES[kind]))
    access = 0
    for ch in rule.access or "rwm":
        access |= ACCESS_BITS.get(ch, 0)
    if access != FULL_ACCESS:
        checks += [_insn(ALU32_MOV_X, dst=1, src=3), _insn(ALU32_AND_K, dst=1, imm=access)]
        if rule.allow:  # allowed only if all the access asked for is in the rule's
            checks.append(_insn(JMP32_JNE_X, dst=1, src=3, off=NEXT))
        else:  # denied if any of it is (v1's devices.deny: an "rw" open of a "w" rule)
            checks.append(_insn(JMP32_JEQ_K, dst=1, off=NEXT, imm=0))
    if rule.major is not None and rule.major >= 0:
        checks.append(_insn(JMP32_JNE_K, dst=4, off=NEXT, imm=rule.major))
    if rule.minor is not None and rule.minor >= 0:
        checks.append(_insn(JMP32_JNE_K, dst=5, off=NEXT, imm=rule.minor))
    block = checks + [_insn(ALU32_MOV_K, dst=0, imm=1 if rule.allow else 0), _insn(JMP_EXIT)]
    n = len(block)
    return [(op, dst, src, (n - i - 1) if off is NEXT else off, imm)
            for i, (op, dst, src, off, imm) in enumerate(block)]


def program(rules):
    """The program's bytes for the rules (in config order; the last match wins)."""
    insns = [
        _insn(LDX_MEM_W, dst=2, src=1, off=0), _insn(ALU32_AND_K, dst=2, imm=0xFFFF),  # type
        _insn(LDX_MEM_W, dst=3, src=1, off=0), _insn(ALU32_RSH_K, dst=3, imm=16),      # access
        _insn(LDX_MEM_W, dst=4, src=1, off=4),                                         # major
        _insn(LDX_MEM_W, dst=5, src=1, off=8),                                         # minor
    ]
    for rule in reversed(rules):
        block = _block(rule)
        insns += block
        if len(block) == 2:
            # a rule that matches every access: what would follow is unreachable, and the
            # verifier refuses unreachable instructions
            return _encode(insns)
    insns += [_insn(ALU32_MOV_K, dst=0, imm=0), _insn(JMP_EXIT)]  # nothing matched: deny
    return _encode(insns)


def attach(cgroup_dir, rules):
    """Load the program for rules and attach it to the cgroup (with BPF_F_ALLOW_MULTI, as
    runc: a program the cgroup inherits from its parents still applies too), then detach
    the device programs pyrunc attached there before (an update replaces, never adds:
    between the two steps both apply, so no access is allowed that either denies)."""
    from ociruntime._native._helper import ffi, lib

    code = ffi.from_buffer(program(rules))
    license_ = ffi.new("char[]", b"Apache")
    log = ffi.new("char[]", 1 << 16)

    def addr(cdata):
        return int(ffi.cast("uintptr_t", cdata))

    attr = ffi.new("char[]", struct.pack(
        "<IIQQIIQII16s", BPF_PROG_TYPE_CGROUP_DEVICE, len(code) // 8, addr(code),
        addr(license_), 1, 1 << 16, addr(log), 0, 0, PROG_NAME))
    prog_fd = lib.pr_bpf(BPF_PROG_LOAD, attr, len(attr))
    if prog_fd < 0:
        err = ffi.errno
        detail = ffi.string(log).decode(errors="replace").strip().splitlines()
        raise PyruncError("linux.resources.devices: the kernel refused the device program "
                          f"(bpf BPF_PROG_LOAD: {os.strerror(err)})"
                          + (f": {detail[-1]}" if detail else ""))
    try:
        cgroup_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            attach_attr = ffi.new("char[]", struct.pack(
                "<IIIII", cgroup_fd, prog_fd, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI, 0))
            if lib.pr_bpf(BPF_PROG_ATTACH, attach_attr, len(attach_attr)) < 0:
                raise PyruncError("linux.resources.devices: attaching the device program "
                                  f"to {cgroup_dir}: {os.strerror(ffi.errno)}")
            new_id = _prog_info(ffi, lib, prog_fd)[0]
            for old_id in attached(cgroup_dir):
                if old_id != new_id:
                    _detach_ours(ffi, lib, cgroup_fd, old_id, cgroup_dir)
        finally:
            os.close(cgroup_fd)
    finally:
        os.close(prog_fd)


def attached(cgroup_dir):
    """The ids of the device programs attached to the cgroup itself (not its parents)."""
    from ociruntime._native._helper import ffi, lib

    fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        ids = ffi.new("uint32_t[]", 64)
        attr = ffi.new("char[]", struct.pack("<IIIIQI4x", fd, BPF_CGROUP_DEVICE, 0, 0,
                                             int(ffi.cast("uintptr_t", ids)), 64))
        if lib.pr_bpf(BPF_PROG_QUERY, attr, len(attr)) < 0:
            raise PyruncError(f"linux.resources.devices: listing the device programs of "
                              f"{cgroup_dir}: {os.strerror(ffi.errno)}")
        count = struct.unpack_from("<I", ffi.buffer(attr), 24)[0]
        return [ids[i] for i in range(min(count, 64))]
    finally:
        os.close(fd)


def _prog_info(ffi, lib, prog_fd):
    """(id, name) of a loaded program (struct bpf_prog_info: id at 4, name at 64)."""
    info = ffi.new("char[]", 80)
    attr = ffi.new("char[]", struct.pack("<IIQ", prog_fd, 80, int(ffi.cast("uintptr_t", info))))
    if lib.pr_bpf(BPF_OBJ_GET_INFO_BY_FD, attr, len(attr)) < 0:
        raise PyruncError("linux.resources.devices: reading a device program's info: "
                          f"{os.strerror(ffi.errno)}")
    raw = ffi.buffer(info)[:]
    return struct.unpack_from("<I", raw, 4)[0], raw[64:80].rstrip(b"\0")


def _detach_ours(ffi, lib, cgroup_fd, prog_id, cgroup_dir):
    attr = ffi.new("char[]", struct.pack("<III", prog_id, 0, 0))
    fd = lib.pr_bpf(BPF_PROG_GET_FD_BY_ID, attr, len(attr))
    if fd < 0:
        if ffi.errno == errno.ENOENT:  # detached and freed meanwhile
            return
        raise PyruncError(f"linux.resources.devices: opening device program {prog_id}: "
                          f"{os.strerror(ffi.errno)}")
    try:
        if _prog_info(ffi, lib, fd)[1] != PROG_NAME:
            return  # someone else's program: left alone
        attr = ffi.new("char[]", struct.pack("<IIIII", cgroup_fd, fd, BPF_CGROUP_DEVICE,
                                             0, 0))  # detach takes no flags
        if lib.pr_bpf(BPF_PROG_DETACH, attr, len(attr)) < 0 and ffi.errno != errno.ENOENT:
            raise PyruncError("linux.resources.devices: detaching the previous device "
                              f"program from {cgroup_dir}: {os.strerror(ffi.errno)}")
    finally:
        os.close(fd)
