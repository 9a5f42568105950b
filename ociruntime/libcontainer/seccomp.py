"""linux.seccomp: compile the config's profile into a BPF program, in the parent, with
libseccomp; the exec stage loads it (plan keys seccomp_fd and seccomp_flags).

The semantics are runc's (libcontainer/seccomp/seccomp_linux.go): each listed architecture
is added next to the native one; an unknown syscall name is skipped with a warning; a rule
whose action is the default action is dropped (libseccomp refuses it); several conditions
on one rule are ANDed, except that when two of them test the same argument each condition
becomes a rule of its own; errnoRet defaults to EPERM for ERRNO and TRACE; and, unless
the default action lets syscalls through (ALLOW, LOG, TRACE), runc's "-ENOSYS stub" goes
in front of the program: for each listed architecture, a syscall numbered above the
highest one the profile names fails with ENOSYS instead of the default action, so that a
program newer than the profile falls back (libc tries clone3, then clone) instead of
failing (libcontainer/seccomp/patchbpf).

Compiling a large profile (docker's and podman's defaults have some 400 names) costs tens
of milliseconds, so the program is cached under the runtime root, keyed by the sha256 of a
canonical encoding of the profile: <root>/@seccomp-cache/<hash>.bpf (the "@" keeps it out
of the container-id namespace).  A cache hit never imports libseccomp's module.

Seccomp notify (SCMP_ACT_NOTIFY + listenerPath): the stage loads the program with
SECCOMP_FILTER_FLAG_NEW_LISTENER before it reports ready and sends the listener fd up the
sync socket; the parent hands it to the agent on listenerPath with the container process
state (send_to_listener).
"""

import os

from ociruntime import log
from ociruntime._native._sys import sha256_hex
from ociruntime.errors import PyruncError

CACHE_DIR = "@seccomp-cache"
# bump when the compile below changes what it produces for the same profile
CACHE_FORMAT = "pyrunc-seccomp-2"
PROGRAM_FILE = "seccomp.bpf"  # the container's own copy, in its state dir (for `exec`)
LISTENER_TIMEOUT = 10.0  # seconds for the agent on listenerPath to take the connection and fd

# libseccomp's action values (seccomp.h); ERRNO and TRACE carry a 16-bit value
ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000,  # kill the thread, as in runc
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,
    "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
    "SCMP_ACT_NOTIFY": 0x7FC00000,
}
OPERATORS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
             "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
# seccomp(2) SECCOMP_SET_MODE_FILTER flags the stage passes when it loads the program
FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2,
         "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4, "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 32}
KNOWN_FLAGS = tuple(FLAGS)
NEW_LISTENER, TSYNC_ESRCH, WAIT_KILLABLE_RECV = 8, 16, 32
ARCHES = (
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64",
)
EPERM = 1
MAX_ARGS = 6


class Program:
    """A compiled profile: the BPF instructions, the seccomp(2) flags to load them with,
    and for seccomp notify the agent's socket (listenerPath) and listenerMetadata."""

    __slots__ = ("bpf", "flags", "key", "listener_path", "listener_metadata")

    def __init__(self, bpf, flags, key, listener_path=None, listener_metadata=None):
        self.bpf, self.flags, self.key = bpf, flags, key
        self.listener_path, self.listener_metadata = listener_path, listener_metadata

    def to_record(self):
        """What state.json keeps for `exec` (the program itself is in PROGRAM_FILE)."""
        return {"flags": self.flags, "key": self.key, "listenerPath": self.listener_path,
                "listenerMetadata": self.listener_metadata}


def uses_notify(profile):
    return any(rule.action == "SCMP_ACT_NOTIFY" for rule in profile.syscalls)


def check(profile):
    """Refuse what cannot be applied, before anything is created."""
    where = "linux.seccomp"
    if profile.default_action == "SCMP_ACT_NOTIFY":
        raise PyruncError(f"{where}.defaultAction: SCMP_ACT_NOTIFY cannot be the default "
                          "action (every syscall, the runtime's own too, would wait for "
                          "the agent)")
    if uses_notify(profile) and not profile.listener_path:
        raise PyruncError(f"{where}: SCMP_ACT_NOTIFY needs listenerPath")
    if profile.listener_path and not profile.listener_path.startswith("/"):
        raise PyruncError(f"{where}.listenerPath: must be an absolute path")
    for i, rule in enumerate(profile.syscalls):
        if rule.action == "SCMP_ACT_NOTIFY" and "write" in rule.names:
            # runc's rule: the runtime's own writes after the filter is loaded would wait
            # for an agent that has not got the listener yet
            raise PyruncError(f"{where}.syscalls[{i}]: SCMP_ACT_NOTIFY cannot be used for "
                              "the write syscall")
        for j, arg in enumerate(rule.args):
            if arg.index >= MAX_ARGS:
                raise PyruncError(f"{where}.syscalls[{i}].args[{j}].index: {arg.index} is "
                                  f"out of range (a syscall has {MAX_ARGS} arguments)")


def prepare(profile, root):
    """The Program for a profile: from the cache under root, else compiled (and cached)."""
    check(profile)
    flags = 0
    for flag in profile.flags:
        flags |= FLAGS[flag]
    listener = profile.listener_path if uses_notify(profile) else None
    if listener:
        flags |= NEW_LISTENER
        if flags & FLAGS["SECCOMP_FILTER_FLAG_TSYNC"]:
            flags |= TSYNC_ESRCH  # the kernel refuses TSYNC with a listener otherwise
    else:
        # libseccomp's rule: WAIT_KILLABLE_RECV only means something with a listener
        flags &= ~WAIT_KILLABLE_RECV
    extra = (listener, profile.listener_metadata if listener else None)
    key = sha256_hex(canonical(profile).encode())
    path = os.path.join(root, CACHE_DIR, key + ".bpf")
    try:
        with open(path, "rb") as f:
            bpf = f.read()
        if bpf and len(bpf) % 8 == 0:
            log.debug(f"seccomp: program {key[:12]} from the cache")
            return Program(bpf, flags, key, *extra)
    except OSError:
        pass
    log.debug(f"seccomp: compiling program {key[:12]}")
    bpf = compile_bpf(profile)
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        _write_atomic(path, bpf)
    except OSError as e:
        log.warn(f"seccomp: cannot cache the compiled program in {path}: {e.strerror}")
    return Program(bpf, flags, key, *extra)


def canonical(profile):
    """A stable text for everything that shapes the program (not the load flags)."""
    rules = tuple(
        (tuple(rule.names), rule.action, rule.errno_ret,
         tuple((a.index, a.value, a.value_two or 0, a.op) for a in rule.args))
        for rule in profile.syscalls)
    return repr((CACHE_FORMAT, os.uname().machine, profile.default_action,
                 profile.default_errno_ret, tuple(profile.architectures), rules))


def _write_atomic(path, data):
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def action_value(action, errno_ret):
    value = ACTIONS[action]
    if action in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        value |= (EPERM if errno_ret is None else errno_ret) & 0xFFFF
    return value


def compile_bpf(profile):
    """libseccomp: build the filter and export it as raw struct sock_filter[] bytes."""
    from ociruntime._native._seccomp import ffi, lib

    where = "linux.seccomp"
    default = action_value(profile.default_action, profile.default_errno_ret)
    ctx = lib.seccomp_init(default)
    if ctx == ffi.NULL:
        raise PyruncError(f"{where}.defaultAction: libseccomp refused {profile.default_action}")
    fd = -1
    try:
        native = lib.seccomp_arch_native()
        for arch in profile.architectures:
            token = lib.seccomp_arch_resolve_name(arch[len("SCMP_ARCH_"):].lower().encode())
            if token == 0:
                raise PyruncError(f"{where}.architectures: {arch} is not supported by this "
                                  "build of libseccomp")
            if token != native:
                _check(lib.seccomp_arch_add(ctx, token), f"{where}.architectures: {arch}")
        # a binary tree of syscalls: large allow-lists cost O(log n) per syscall
        if lib.seccomp_api_get() >= 1:
            lib.seccomp_attr_set(ctx, lib.SCMP_FLTATR_CTL_OPTIMIZE, 2)
        unknown = []
        for i, rule in enumerate(profile.syscalls):
            action = action_value(rule.action, rule.errno_ret)
            if action == default:
                continue  # libseccomp refuses a rule that repeats the default; runc skips it
            conds = _conditions(ffi, rule.args)
            for name in rule.names:
                nr = lib.seccomp_syscall_resolve_name(name.encode())
                if nr == lib.__NR_SCMP_ERROR:
                    unknown.append(name)
                    continue
                for cond in conds:
                    if cond is None:
                        rc = lib.seccomp_rule_add_array(ctx, action, nr, 0, ffi.NULL)
                    else:
                        rc = lib.seccomp_rule_add_array(ctx, action, nr, len(cond), cond)
                    _check(rc, f"{where}.syscalls[{i}]: {name}")
        if unknown:
            log.warn(f"{where}: unknown syscall names ignored: {', '.join(unknown)}")
        fd = os.memfd_create("pyrunc-seccomp-build", os.MFD_CLOEXEC)
        _check(lib.seccomp_export_bpf(ctx, fd), f"{where}: exporting the program")
        size = os.fstat(fd).st_size
        return enosys_stub(profile, lib) + os.pread(fd, size, 0)
    finally:
        if fd >= 0:
            os.close(fd)
        lib.seccomp_release(ctx)


# AUDIT_ARCH values: libseccomp's tokens are these, but for x32 (its own fake value; the
# kernel reports x32 syscalls as x86_64 ones with bit 30 set in the number)
AUDIT_ARCH_X86_64, SCMP_ARCH_X32 = 0xC000003E, 0x4000003E
AUDIT_ARCH_S390, AUDIT_ARCH_S390X = 0x16, 0x80000016
X32_SYSCALL_BIT = 0x40000000
ENOSYS = 38
PASSING_DEFAULTS = ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE")


def enosys_stub(profile, lib):
    """runc's -ENOSYS stub (see the module's docstring) as BPF bytes; b"" when none."""
    if profile.default_action in PASSING_DEFAULTS:
        return b""
    highest = {}  # AUDIT_ARCH -> {libseccomp token: the highest syscall number named}
    for arch in profile.architectures:
        token = lib.seccomp_arch_resolve_name(arch[len("SCMP_ARCH_"):].lower().encode())
        numbers = [lib.seccomp_syscall_resolve_name_arch(token, name.encode())
                   for rule in profile.syscalls for name in rule.names]
        top = max((nr for nr in numbers if nr >= 0), default=0)
        if top:
            audit = AUDIT_ARCH_X86_64 if token == SCMP_ARCH_X32 else token
            highest.setdefault(audit, {})[token] = top
    if not highest:
        return b""
    return _assemble(_stub_program(highest))


def _stub_program(highest):
    """The stub with symbolic jumps: ("ld", offset), ("jeq"|"jgt"|"jset", k, then, else),
    ("ja", label), ("ret", k), ("label", name).  "filter" is the profile's own program."""
    prog = []
    for i, (audit, tops) in enumerate(highest.items()):
        nxt = f"arch{i + 1}"
        prog += [("label", f"arch{i}"), ("ld", 4), ("jeq", audit, None, nxt), ("ld", 0)]
        if audit in (AUDIT_ARCH_S390, AUDIT_ARCH_S390X):
            prog.append(("jeq", 0, "enosys", None))  # the multiplexer unknown ones go to
        if audit == AUDIT_ARCH_X86_64:
            prog.append(("jset", X32_SYSCALL_BIT, f"x32_{i}", None))
            for label, token in ((f"x64_{i}", AUDIT_ARCH_X86_64), (f"x32_{i}", SCMP_ARCH_X32)):
                prog.append(("label", label))
                prog.append(("jgt", tops[token], "enosys", "filter") if token in tops
                            else ("ja", "filter"))
        else:
            prog.append(("jgt", max(tops.values()), "enosys", "filter"))
    prog += [("label", f"arch{len(highest)}"), ("ja", "filter"), ("label", "enosys"),
             ("ret", ACTIONS["SCMP_ACT_ERRNO"] | ENOSYS), ("label", "filter")]
    return prog


BPF_LD_W_ABS, BPF_JA, BPF_RET_K = 0x20, 0x05, 0x06
BPF_JUMPS = {"jeq": 0x15, "jgt": 0x25, "jset": 0x45}


def _assemble(prog):
    import struct

    where, count = {}, 0
    for insn in prog:
        if insn[0] == "label":
            where[insn[1]] = count
        else:
            count += 1
    out, index = [], 0
    for insn in prog:
        op = insn[0]
        if op == "label":
            continue
        index += 1  # jumps count from the next instruction

        def offset(label, index=index):
            skip = 0 if label is None else where[label] - index
            if not 0 <= skip <= 255:
                raise PyruncError("linux.seccomp: the -ENOSYS stub is too long")
            return skip

        if op == "ld":
            out.append(struct.pack("=HBBI", BPF_LD_W_ABS, 0, 0, insn[1]))
        elif op == "ja":
            out.append(struct.pack("=HBBI", BPF_JA, 0, 0, where[insn[1]] - index))
        elif op == "ret":
            out.append(struct.pack("=HBBI", BPF_RET_K, 0, 0, insn[1]))
        else:
            out.append(struct.pack("=HBBI", BPF_JUMPS[op], offset(insn[2]), offset(insn[3]),
                                   insn[1]))
    return b"".join(out)


def _conditions(ffi, args):
    """The condition arrays to add a rule with (runc's rule): all args in one array, or one
    array per arg when an argument index repeats; [None] for an unconditional rule."""
    if not args:
        return [None]

    def array(group):
        arr = ffi.new("struct scmp_arg_cmp[]", len(group))
        for slot, arg in zip(arr, group, strict=True):
            slot.arg = arg.index
            slot.op = OPERATORS[arg.op]
            slot.datum_a = arg.value
            slot.datum_b = arg.value_two or 0
        return arr

    indexes = [a.index for a in args]
    if len(set(indexes)) != len(indexes):
        return [array([a]) for a in args]
    return [array(args)]


def _check(rc, what):
    if rc < 0:
        raise PyruncError(f"{what}: libseccomp: {os.strerror(-rc)}")


# --- handing the program to the stage ---------------------------------------------------------

def program_fd(bpf, min_fd=3):
    """A sealed, close-on-exec memfd holding the program, numbered >= min_fd (never on an fd
    the container asked to preserve)."""
    import fcntl

    fd = os.memfd_create("pyrunc-seccomp", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.write(fd, bpf)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK
                    | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE)
        if fd < min_fd:
            new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, min_fd)
            os.close(fd)
            fd = new
    except BaseException:
        os.close(fd)
        raise
    return fd


def save_for_exec(state_dir, program):
    """The container's program, kept next to its state.json for `pyrunc exec`."""
    _write_atomic(os.path.join(state_dir, PROGRAM_FILE), program.bpf)


def load_for_exec(state_dir, record):
    """The Program a container was created with, or None (no seccomp)."""
    info = record.get("seccomp")
    if not info:
        return None
    path = os.path.join(state_dir, PROGRAM_FILE)
    try:
        with open(path, "rb") as f:
            bpf = f.read()
    except OSError as e:
        raise PyruncError(f"the container's seccomp program {path}: {e.strerror}") from None
    return Program(bpf, info["flags"], info.get("key"), info.get("listenerPath"),
                   info.get("listenerMetadata"))


def send_to_listener(program, listener_fd, pid, state_json):
    """Seccomp notify: one message to the agent on listenerPath, the container process
    state (runtime-spec) with the listener fd as SCM_RIGHTS, then close the connection."""
    from ociruntime import OCI_VERSION, jsonlite
    from ociruntime._native._sys import connect_unix, send_fd

    head = {"ociVersion": OCI_VERSION, "fds": ["seccompFd"], "pid": pid}
    if program.listener_metadata:
        head["metadata"] = program.listener_metadata
    body = (jsonlite.dumps(head)[:-1] + ',"state":' + state_json + "}").encode()
    path = program.listener_path
    sock = -1
    try:
        sock = connect_unix(path, LISTENER_TIMEOUT)
        sent = send_fd(sock, body, listener_fd)
        while sent < len(body):  # the fd went with the first part only
            sent += os.write(sock, body[sent:])
    except OSError as e:
        raise PyruncError(f"linux.seccomp.listenerPath: sending to {path}: "
                          f"{e.strerror or e}") from None
    finally:
        if sock >= 0:
            os.close(sock)
