"""runc and pyrunc side by side: the command line (help, flags, errors, exit statuses,
output formats), the lifecycle as scripts drive it, the terminal, the log file.

Each scenario runs the same bundle and commands through both and compares them (see
difflib_runc); where pyrunc differs on purpose the step says why and asserts the
difference."""

import json
import os
import subprocess

import difflib_runc as dl
import pytest
from difflib_runc import (
    Cmd,
    Differs,
    File,
    Host,
    Scenario,
    Wait,
    WaitStatus,
    console_output,
    receive_console,
)

import pyrunc_testlib as lib

COMMANDS = ("checkpoint", "create", "delete", "events", "exec", "kill", "list", "pause", "ps",
            "restore", "resume", "run", "spec", "start", "state", "update", "features")
SLEEP = '.process.terminal = false | .process.args = ["sleep", "1000"]'


def _spec_text(side):
    """config.json as `spec` wrote it, the ociVersion value masked."""
    with open(side.expand("{dir}/config.json")) as f:
        text = f.read()
    return text.replace(json.loads(text)["ociVersion"], "<VERSION>", 1)


# what the container sees, one aspect a scenario (so that one known difference does not hide
# the others)
VIEWS = {
    "identity": "id; pwd; hostname; umask; ulimit -n; ulimit -Hn; ulimit -u",
    "env": "env | sort",
    "caps": "grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status",
    "mounts": "cut -d' ' -f1-4 /proc/self/mounts",
    "dev": "ls -ln /dev | cut -c1-10,30- | tr -s ' '",
    "cgroup": "cut -d: -f2- /proc/self/cgroup | sort",
    "terminal": "tty; stty size 2>&1; ls -l /dev/console 2>&1 | cut -c1-10",
    "stdio": "for fd in 0 1 2; do readlink /proc/$$/fd/$fd; done | cut -d: -f1",
}
KNOWN = {}  # view: reason, for a difference not on purpose (a strict xfail); none left


def view(name, terminal=False, exec_=False):
    script = VIEWS[name]
    marks = (pytest.mark.xfail(strict=True, reason=KNOWN[name]),) if name in KNOWN else ()
    if exec_:
        steps = (Cmd("run", "-d", "{id}", stdout="ignore"), WaitStatus("running"),
                 Cmd("exec", *(("-t",) if terminal else ()), "{id}", "sh", "-c", script,
                     tty=terminal))
        jq = SLEEP
    else:
        steps = (Cmd("run", "{id}", tty=terminal),)
        jq = f'.process.terminal = {str(terminal).lower()} | .process.args = ["sh", "-c", ' \
             f'{json.dumps(script)}]'
    where = "exec" if exec_ else "run"
    return scenario(*steps, jq=jq, marks=marks,
                    name=f"view-{name}-{where}" + ("-tty" if terminal else ""))


# the fds a program has: what --preserve-fds passed (3, 4) and nothing else
FD_VIEW = "cat /proc/self/fd/3 /proc/self/fd/4 2>&1; ls /proc/self/fd | tr '\\n' ' '; echo"


def write_file(path, text):
    """A step: path (expanded) written with text."""
    def write(side):
        with open(side.expand(path), "w") as f:
            f.write(text)
    return Host(write)


def jq_in_place(path, program):
    """A step: `jq PROGRAM path > tmp && mv tmp path`, as scripts edit runc's spec."""
    def edit(side):
        target = side.expand(path)
        with open(target) as f:
            out = subprocess.run(["jq", program], stdin=f, capture_output=True, text=True,
                                 check=True, timeout=dl.TIMEOUT).stdout
        with open(target + ".tmp", "w") as f:
            f.write(out)
        os.replace(target + ".tmp", target)
    return Host(edit)


def both_fail(rc, text):
    """runc fails too (exit rc; for its own reason), pyrunc with one line mentioning text."""
    refusal = runc_refusal(rc, text)

    def check(runc, pyrunc):
        assert runc.rc == rc, runc.describe()
        refusal(runc, pyrunc)
    return check


KMEM = ("kernel memory limits: runc 1.1 ignores them with a warning; pyrunc applies "
        "kernelTCP and refuses kernel where the kernel ignores memory.kmem.limit_in_bytes "
        "(Linux >= 5.16): config.md, a setting that cannot be applied is an error")


def later_flag(runc, pyrunc):
    """runc 1.1.5 does not know the flag (usage error, exit 1); pyrunc applies it."""
    assert runc.rc == 1 and "flag provided but not defined" in runc.stdout + runc.stderr, (
        runc.describe())
    assert pyrunc.rc == 0 and not pyrunc.stderr, pyrunc.describe()


def kmem_differs(rc, text):
    """runc warns and ignores the limit (exit 0); pyrunc applies it (rc 0, nothing said) or
    refuses it in one line naming text (rc 1)."""
    def check(runc, pyrunc):
        assert runc.rc == 0 and "Kernel memory settings are ignored" in runc.stderr, (
            runc.describe())
        if rc:
            runc_refusal(rc, text)(runc, pyrunc)
        else:
            assert pyrunc.rc == 0 and not pyrunc.stderr, pyrunc.describe()
    return check


def runc_refusal(rc=1, text=None):
    """pyrunc fails (exit rc) with one error line, mentioning text, where runc does not."""
    def check(runc, pyrunc):
        assert pyrunc.rc == rc, pyrunc.describe()
        lines = pyrunc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("runc: "), pyrunc.describe()
        assert text is None or text in lines[0], pyrunc.describe()
    return check


def cgroup_dir(side, controller):
    """The container's v1 cgroup directory of controller (/ID below the caller's own cgroup,
    for both since ae3f820)."""
    for d in lib.container_cgroup_dirs(side.ids[0]):
        if d.startswith(f"{lib.CGROUP_ROOT}/{controller}/"):
            return d
    raise AssertionError(f"{side.name}: no {controller} cgroup for {side.ids[0]}")


def cgroup_files(*names, differs=None):
    """A step: the contents of the container's cgroup files, "controller/file" each."""
    def read(side):
        out = []
        for name in names:
            controller, file = name.split("/")
            with open(os.path.join(cgroup_dir(side, controller), file)) as f:
                out.append(f.read())
        return out
    return Host(read, differs)


def write_process_json(env):
    """A step: {dir}/process.json for exec -p, running `pwd; echo $X` in /tmp."""
    return Host(lambda side: open(side.expand("{dir}/process.json"), "w").write(json.dumps(
        {"terminal": False, "user": {"uid": 0, "gid": 0}, "cwd": "/tmp",
         "args": ["sh", "-c", "pwd; echo $X"], "env": env})) and None)


def json_paths(doc, prefix=""):
    paths = set()
    if isinstance(doc, dict):
        for key, value in doc.items():
            paths |= {prefix + "/" + key} | json_paths(value, prefix + "/" + key)
    return paths


def features_superset(runc, pyrunc):
    assert runc.rc == pyrunc.rc == 0
    theirs = {p for p in json_paths(json.loads(runc.stdout)) if not p.startswith(
        "/annotations/")}
    missing = theirs - json_paths(json.loads(pyrunc.stdout))
    assert not missing, f"pyrunc's features lack {sorted(missing)}"
    assert dl.json_layout(runc.stdout)["indent"] == dl.json_layout(pyrunc.stdout)["indent"]
    assert pyrunc.stdout.startswith('{\n    "') and pyrunc.stdout.endswith("\n}\n")


def version_lines(runc, pyrunc):
    """--version: runc adds go and libseccomp lines; the first three lines match."""
    assert runc.rc == pyrunc.rc == 0
    keys = [line.split(" ")[0].rstrip(":") for line in pyrunc.stdout.splitlines()]
    assert keys == ["runc", "commit", "spec"], pyrunc.describe()


def scenario(*steps, name=None, marks=(), **kw):
    return pytest.param(Scenario(name or "", tuple(steps), **kw), marks=marks, id=name)


SCENARIOS = [
    # --- spec -------------------------------------------------------------------------------
    scenario(Cmd("spec", "--bundle", "{dir}"), Host(_spec_text), name="spec"),
    scenario(Cmd("spec", "--rootless", "--bundle", "{dir}"), Host(_spec_text),
             name="spec-rootless"),
    scenario(Cmd("spec"), name="spec-exists"),
    scenario(Cmd("spec", "--bundle", "{dir}/nonexistent"), name="spec-missing-bundle"),

    # --- help, usage, unknown commands and flags --------------------------------------------
    scenario(Cmd("--help", stdout="help"), Cmd("-h", stdout="help"),
             Cmd("help", stdout="help"), name="help"),
    scenario(Cmd(stdout="help"), name="no-arguments"),
    scenario(Cmd("nosuchcommand", stdout="help"), name="unknown-command"),
    scenario(Cmd("--bogus", stdout="help"), name="unknown-global-flag"),
    scenario(Cmd("state", "--bogus", stdout="help"), name="unknown-command-flag"),
    *(scenario(Cmd(c, "--help", stdout="help"), Cmd("help", c, stdout="help"),
               name=f"help-{c}") for c in COMMANDS),
    scenario(Cmd("kill", stdout="help"), Cmd("state", stdout="help"),
             Cmd("exec", stdout="help"), Cmd("delete", "a", "b", stdout="help"),
             name="missing-or-extra-arguments"),

    # --- global flags -----------------------------------------------------------------------
    scenario(Cmd("state", "{id}", global_args=("--log-format=invalid",)),
             name="log-format-invalid"),
    scenario(Cmd("state", "{id}", global_args=("--log", "{dir}/no/such/dir/log")),
             name="log-path-unusable"),
    scenario(Cmd("state", "{id}", global_args=("--log", "{dir}/log")),
             File("{dir}/log", "log-text"), name="log-file-text"),
    scenario(Cmd("state", "{id}", global_args=("--log", "{dir}/log", "--log-format", "json")),
             File("{dir}/log", "log-json"), name="log-file-json"),
    scenario(Cmd("list", global_args=("--debug",)), name="debug-list"),
    scenario(Cmd("run", "{id}", global_args=("--debug", "--log", "{dir}/log")),
             File("{dir}/log", "log-levels"),
             Cmd("state", "{id}", global_args=("--debug", "--log", "{dir}/log2")),
             File("{dir}/log2", "log-levels"),  # runc --debug adds func= and file=
             jq='.process.terminal = false | .process.args = ["true"]', name="debug-log-file"),
    scenario(Cmd("run", "-d", "{id}", stdout="ignore",
                 global_args=("--log", "{dir}/log", "--log-format", "json")),
             Cmd("exec", "{id}", "nosuchprogram",
                 global_args=("--log", "{dir}/log", "--log-format", "json")),
             File("{dir}/log", "log-json"), jq=SLEEP, name="log-file-json-exec-failure"),

    # --- a missing container ----------------------------------------------------------------
    scenario(*(Cmd(*args) for args in (
        ("state", "{id}"), ("start", "{id}"), ("kill", "{id}"), ("kill", "{id}", "KILL"),
        ("delete", "{id}"), ("pause", "{id}"), ("resume", "{id}"), ("ps", "{id}"),
        ("events", "--stats", "{id}"), ("update", "--pids-limit", "10", "{id}"),
        ("exec", "{id}", "true"))), Cmd("delete", "--force", "{id}"),
        name="missing-container"),

    # --- the lifecycle, one call at a time (the way people script runc) ---------------------
    scenario(
        Cmd("create", "{id}", stdout="ignore"),
        Cmd("state", "{id}", stdout="json-values"),
        Cmd("list", stdout="table"), Cmd("list", "-q"), Cmd("list", "-f", "json",
                                                            stdout="json-values"),
        Cmd("start", "{id}"), WaitStatus("running"),
        Cmd("state", "{id}", stdout="json-values"),
        Cmd("ps", "-f", "json", "{id}", stdout="json"),
        Cmd("ps", "{id}", stdout="table"),
        Cmd("kill", "{id}", "0"), Cmd("kill", "-a", "{id}", "0"),
        Cmd("exec", "{id}", "true"), Cmd("exec", "{id}", "false"),
        Cmd("exec", "{id}", "sh", "-c", "exit 7"),
        Cmd("exec", "{id}", "nosuchprogram"),
        Cmd("pause", "{id}"), Cmd("state", "{id}", stdout="json-values"),
        Cmd("resume", "{id}"),
        Cmd("events", "--stats", "{id}", stdout="json-top"),
        Cmd("update", "--pids-limit", "50", "{id}"),
        Cmd("create", "{id}", stdout="ignore"),
        Cmd("delete", "{id}"),
        Cmd("kill", "{id}", "KILL"), WaitStatus("stopped"),
        Cmd("state", "{id}", stdout="json-values"),
        Cmd("start", "{id}"),
        Cmd("delete", "{id}"), Cmd("list", "-q"),
        jq=SLEEP, name="lifecycle"),

    scenario(Cmd("run", "-d", "{id}", stdout="ignore"), WaitStatus("running"),
             Cmd("exec", "{id}", "sh", "-c", "echo hello; echo err >&2", stderr="exact"),
             Cmd("exec", "-e", "FOO=bar", "--cwd", "/tmp", "{id}", "sh", "-c",
                 "echo $FOO; pwd"),
             Cmd("exec", "-u", "65534:65534", "{id}", "id"),
             Cmd("exec", "-d", "{id}", "sleep", "1"),
             Cmd("delete", "{id}"), Cmd("delete", "-f", "{id}"), Cmd("list", "-q"),
             jq=SLEEP, name="run-detached-then-exec"),

    # --- foreground run -----------------------------------------------------------------------
    # stdin goes through: read, not read at all (1 MiB: more than a pipe holds), cut short
    scenario(Cmd("run", "{id}", input="hello\n"),
             Cmd("run", "{id}2", input="x" * (1 << 20)),
             jq='.process.terminal = false | .process.args = ["sh", "-c", '
             '"read -r line && echo got $line; ls -l /proc/$$/fd/[012] | grep -c pipe"]',
             ids=2, name="run-stdin"),
    scenario(Cmd("run", "-d", "{id}", stdout="ignore"), WaitStatus("running"),
             Cmd("exec", "{id}", "head", "-c", "5", input="y" * (1 << 20)),
             Cmd("exec", "{id}", "true", input="y" * (1 << 20)),
             Cmd("exec", "{id}", "sh", "-c", "wc -c; echo err >&2", input="z" * 100000,
                 stderr="exact"),
             jq=SLEEP, name="exec-stdin"),
    # in a user namespace the pipes belong to the container's root: it can reopen them
    scenario(Cmd("run", "{id}", input="in\n"),
             jq='.process.terminal = false | .process.args = ["sh", "-c", "echo out > '
             '/dev/stdout; echo err > /dev/stderr; head -n1 /dev/stdin; stat -c %u:%g '
             '/proc/$$/fd/0 /proc/$$/fd/1 /proc/$$/fd/2"] | .linux.namespaces += '
             '[{"type": "user"}] | .linux.uidMappings = [{"containerID": 0, "hostID": '
             '100000, "size": 65536}] | .linux.gidMappings = .linux.uidMappings',
             name="run-stdio-in-a-user-namespace"),
    scenario(Cmd("run", "{id}"), jq='.process.terminal = false | .process.args = '
             '["sh", "-c", "echo out; echo err >&2; exit 3"]', name="run-foreground-status"),
    scenario(Cmd("run", "{id}", tty=True),
             jq='.process.args = ["sh", "-c", "tty; stty size >/dev/null && echo sized; '
             'echo out; exit 4"]', name="run-terminal-on-callers-tty"),
    scenario(Cmd("run", "-d", "{id}"), Cmd("create", "{id}"),
             jq='.process.args = ["true"]', name="terminal-without-console-socket-detached"),
    scenario(Cmd("run", "{id}", differs=Differs(
        "runc needs a controlling terminal to relay the pty (it opens /dev/tty); pyrunc "
        "relays it to whatever stdio it has", lambda runc, pyrunc: (
            runc.rc == 1 and pyrunc.rc == 0 and pyrunc.stdout == "hello\r\n"))),
             jq='.process.args = ["echo", "hello"]', name="terminal-foreground-without-a-tty"),
    scenario(Cmd("run", "{id}", background=True), WaitStatus("running"),
             Cmd("kill", "{id}", "KILL"), Wait(), Cmd("list", "-q"),
             jq=SLEEP, name="run-foreground-killed"),
    scenario(Cmd("run", "--console-socket", "{dir}/console.sock", "{id}"), Cmd("list", "-q"),
             jq='.process.args = ["true"]', name="console-socket-in-foreground"),

    # --- what the container sees ----------------------------------------------------------
    *(view(name) for name in VIEWS if name != "terminal"),
    view("terminal", terminal=True), view("identity", terminal=True),
    *(view(name, exec_=True) for name in ("identity", "env", "caps", "cgroup", "stdio")),
    view("terminal", terminal=True, exec_=True),
    # names runc 1.1 does not know (or this kernel lacks): one warning, the rest applies
    scenario(Cmd("run", "{id}", stderr="lines"),
             jq='.process.terminal = false | .process.args = ["sh", "-c", '
             f'{json.dumps(VIEWS["caps"])}] | .process.capabilities.bounding += '
             '["CAP_FOO", "cap_kill"] | .process.capabilities.effective += ["CAP_FOO"] | '
             '.process.capabilities.ambient = ["CAP_BAR", "CAP_KILL"]',
             name="caps-unknown-names"),
    scenario(Cmd("run", "-d", "{id}", stdout="ignore"), WaitStatus("running"),
             Cmd("exec", "--cap", "CAP_FOO", "--cap", "CAP_SYS_ADMIN", "{id}", "sh", "-c",
                 VIEWS["caps"], stderr="lines"),
             jq=SLEEP, name="caps-unknown-names-exec"),
    # capset(2) refuses an effective set beyond the permitted one: both fail, nothing left
    scenario(Cmd("run", "{id}"), Cmd("list", "-q"),
             jq='.process.terminal = false | .process.args = ["true"] | '
             '.process.capabilities.effective += ["CAP_SYS_ADMIN"]',
             name="caps-effective-beyond-permitted"),
    scenario(Cmd("run", "-d", "{id}", stdout="ignore"), Cmd("exec", "-t", "-d", "{id}", "true"),
             jq=SLEEP, name="exec-tty-detached-without-console-socket"),

    # --- --console-socket, with a receiver that takes the pty master (as engines do) ---------
    scenario(receive_console(),
             Cmd("run", "-d", "--console-socket", "{dir}/console.sock", "{id}"),
             console_output(),
             jq='.process.args = ["sh", "-c", "tty; stty size; echo hello"]',
             name="console-socket-run-detached"),
    scenario(receive_console(),
             Cmd("create", "--console-socket", "{dir}/console.sock", "{id}"),
             Cmd("start", "{id}"), console_output(), WaitStatus("stopped"),
             Cmd("delete", "{id}"),
             jq='.process.args = ["sh", "-c", "tty; echo hello"]',
             name="console-socket-create-start"),
    scenario(Cmd("run", "-d", "{id}", stdout="ignore"), WaitStatus("running"),
             receive_console(),
             Cmd("exec", "-t", "-d", "--console-socket", "{dir}/console.sock", "{id}", "sh",
                 "-c", "tty; echo from-exec"),
             console_output(),
             Cmd("exec", "--console-socket", "{dir}/console.sock", "{id}", "true"),
             jq=SLEEP, name="console-socket-exec"),
    scenario(Cmd("create", "--console-socket", "{dir}/nonexistent.sock", "{id}"),
             Cmd("list", "-q"), jq='.process.args = ["true"]',
             name="console-socket-missing"),

    # --- exec's flags -------------------------------------------------------------------------
    scenario(Cmd("run", "-d", "{id}", stdout="ignore"), WaitStatus("running"),
             Cmd("exec", "--cgroup", "nosuch", "{id}", "true"),
             Host(lambda side: os.mkdir(os.path.join(cgroup_dir(side, "pids"), "sub"))),
             Cmd("exec", "--cgroup", "pids:sub", "{id}", "sh", "-c",
                 "grep pids /proc/self/cgroup | grep -o '/sub$'"),
             Cmd("exec", "--cgroup", "sub", "{id}", "true"),
             Cmd("exec", "-p", "{dir}/nonexistent.json", "{id}"),
             Cmd("exec", "--preserve-fds", "-1", "{id}", "true", differs=Differs(
                 "a negative count is a mistake: refused, where runc takes it as 0",
                 runc_refusal(1, "preserve-fds"))),
             Cmd("exec", "-u", "1000:1000", "-g", "5", "-g", "6", "{id}", "id"),
             Cmd("exec", "--env", "A=1", "--env", "B=2", "{id}", "sh", "-c", "echo $A$B"),
             Cmd("exec", "--env", "A=1", "-e", "B=2", "{id}", "sh", "-c", "echo $A$B",
                 differs=Differs("pyrunc takes a flag's long and short forms together; runc "
                                 "(urfave/cli) refuses the mix", lambda runc, pyrunc: (
                                     runc.rc == 1 and pyrunc.rc == 0
                                     and pyrunc.stdout == "12\n"))),
             Cmd("exec", "--no-new-privs", "--cap", "CAP_SYS_ADMIN", "{id}", "sh", "-c",
                 "grep -E '^(CapBnd|NoNewPrivs)' /proc/self/status"),
             Cmd("exec", "{id}"),
             Cmd("pause", "{id}"), Cmd("exec", "{id}", "true"), Cmd("resume", "{id}"),
             Cmd("exec", "--pid-file", "{dir}/exec.pid", "-d", "{id}", "sleep", "1"),
             File("{dir}/exec.pid"),
             jq=SLEEP, name="exec-flags"),

    # --- kill, delete, update, events, ps, features, version ----------------------------------
    scenario(Cmd("run", "-d", "{id}", stdout="ignore"), WaitStatus("running"),
             Cmd("kill", "{id}", "NOSUCHSIGNAL"), Cmd("kill", "{id}", "99"),
             Cmd("kill", "{id}", "-9"),
             Cmd("kill", "{id}", "SIGCONT"), Cmd("kill", "{id}", "winch"),
             Cmd("kill", "{id}", "28"), Cmd("kill", "{id}", "+28"), Cmd("kill", "{id}", "²"),
             Cmd("kill", "{id}", "STKFLT"), Cmd("kill", "{id}", "sigpwr"),
             Cmd("kill", "{id}", "RTMIN+1"), Cmd("kill", "{id}", "IOT"),
             Cmd("kill", "{id}", "SIGCLD"), Cmd("kill", "{id}", "poll"),
             Cmd("kill", "{id}", "RTMIN"), Cmd("kill", "{id}", "SIGRTMAX"),
             Cmd("delete", "{id}"), Cmd("kill", "{id}", "9"), WaitStatus("stopped"),
             Cmd("kill", "{id}"), Cmd("kill", "-a", "{id}", "KILL"),
             Cmd("pause", "{id}"), Cmd("resume", "{id}"), Cmd("exec", "{id}", "true"),
             Cmd("start", "{id}"), Cmd("delete", "{id}"), Cmd("delete", "{id}"),
             jq=SLEEP, name="kill-and-stopped-container"),
    scenario(Cmd("run", "-d", "{id}", stdout="ignore"), WaitStatus("running"),
             Cmd("update", "--memory", "64m", "--memory-swap", "128m", "--pids-limit", "99",
                 "--cpu-share", "512", "--cpu-quota", "20000", "--cpu-period", "100000",
                 "--cpuset-cpus", "0", "{id}"),
             cgroup_files("memory/memory.limit_in_bytes", "pids/pids.max", "cpu/cpu.shares",
                          "cpu/cpu.cfs_quota_us", "cpuset/cpuset.cpus"),
             Cmd("update", "-r", "-", "{id}", input='{"pids": {"limit": 77}}'),
             cgroup_files("pids/pids.max"),
             Cmd("update", "-r", "{dir}/nonexistent.json", "{id}"),
             Cmd("update", "--memory", "lots", "{id}", stdout="help"),
             Cmd("update", "--pids-limit", "x", "{id}", stdout="help"),
             Cmd("events", "--stats", "{id}", stdout="json-top"),
             Cmd("events", "--interval", "0s", "{id}"),
             Cmd("kill", "{id}", "KILL"), WaitStatus("stopped"),
             Cmd("events", "--stats", "{id}"),
             jq=SLEEP, name="update-and-events"),
    scenario(Cmd("run", "-d", "{id}", stdout="ignore"), WaitStatus("running"),
             Cmd("ps", "{id}", "-o", "pid,comm", stdout="table"),
             Cmd("ps", "-f", "table", "{id}", stdout="table"),
             Cmd("ps", "-f", "xml", "{id}"),
             Cmd("list", "-f", "xml"), Cmd("list", "--format", "table", stdout="table"),
             jq=SLEEP, name="ps-and-list-formats"),
    scenario(Cmd("features", differs=Differs(
        "runc 1.1.5 prints an older features document; pyrunc's has every key of it (but "
        "runc's own annotations) and the later spec's", features_superset)), name="features"),
    scenario(Cmd("--version", differs=Differs("runc also prints its go and libseccomp "
                                              "versions", version_lines)),
             Cmd("-v", differs=Differs("as --version", version_lines)), name="version"),
    scenario(Cmd("checkpoint", "{id}", differs=Differs(
        "no CRIU support", runc_refusal(1, "CRIU"))), name="checkpoint-refused"),

    # --- the remaining flags of run, create and the global ones ------------------------------
    *(scenario(Cmd(*global_args, "run", "-d", *flags, "{id}", stdout="ignore"),
               WaitStatus("running"), Cmd("exec", "{id}", "true"), jq=SLEEP,
               name="flags" + "".join(global_args + flags).replace("-", "_"))
      for global_args, flags in (
          ((), ("--no-subreaper",)), ((), ("--no-new-keyring",)),
          ((), ("--preserve-fds", "1")), (("--rootless", "true"), ()),
          (("--rootless", "false"), ()), (("--criu", "/bin/false"), ()))),
    scenario(Cmd("run", "{id}", global_args=("--systemd-cgroup",)), Cmd("list", "-q"),
             jq=SLEEP, name="systemd-cgroup-without-systemd"),
    scenario(Cmd("create", "--pid-file", "{dir}/pid", "-b", "{bundle}", "{id}"),
             File("{dir}/pid"), Cmd("start", "{id}"), WaitStatus("running"),
             Cmd("exec", "--ignore-paused", "{id}", "true"),
             Cmd("exec", "--apparmor", "nosuchprofile", "{id}", "true"),
             Cmd("exec", "--process-label", "system_u:system_r:container_t:s0", "{id}", "true",
                 differs=Differs("where SELinux is off pyrunc ignores labels, at exec as at "
                                 "create (tests/engine); runc refuses them",
                                 lambda runc, pyrunc: runc.rc == 255 and pyrunc.rc == 0)),
             write_process_json(["PATH=/bin:/usr/bin", "X=from-process-json"]),
             Cmd("exec", "-p", "{dir}/process.json", "{id}"),
             Cmd("exec", "--process", "{dir}/process.json", "{id}", "ignored", "args"),
             jq=SLEEP, name="create-pid-file-and-exec-process-json"),
    scenario(Cmd("run", "-d", "{id}", stdout="ignore"), WaitStatus("running"),
             Host(lambda side: os.mkdir(side.expand("{dir}/taken"))),
             Cmd("exec", "-d", "--pid-file", "{dir}/taken", "{id}", "sleep", "777"),
             Cmd("ps", "{id}", stdout="table"),  # the exec'd sleep was killed
             jq=SLEEP, name="exec-pid-file-unwritable"),
    scenario(Cmd("run", "-d", "{id}", stdout="ignore"), WaitStatus("running"),
             write_process_json(["X=1"]), Cmd("exec", "-p", "{dir}/process.json", "{id}"),
             jq=SLEEP, name="exec-process-json-without-path"),
    # without PATH in the env a bare program name is found nowhere (no default PATH), at
    # run as at exec; a name with a slash still runs
    *(scenario(Cmd("run", "{id}"), Cmd("list", "-q"),
               jq=f'.process.terminal = false | .process.env = {env} | '
                  f'.process.args = ["{prog}", "-c", "echo ran"]',
               name=f"run-env-{label}-{prog.replace('/', '_')}")
      for label, env in (("without-path", '["X=1"]'), ("empty-path", '["PATH="]'))
      for prog in ("sh", "/bin/sh")),
    scenario(Cmd("restore", "{id}", differs=Differs(
        "no CRIU support (runc: fails without criu too, after its version check)",
        runc_refusal(1, "CRIU"))), name="restore-refused"),

    # --- bad configs -------------------------------------------------------------------------
    scenario(Cmd("run", "{id}"), Cmd("list", "-q"), jq='.process.terminal = false | '
             '.process.args = []', name="config-empty-args"),
    scenario(Cmd("run", "{id}"), Cmd("list", "-q"), jq='.process.terminal = false | '
             '.process.args = ["/nonexistent"]', name="config-missing-program"),
    scenario(Cmd("run", "{id}"), Cmd("list", "-q"), jq='.process.terminal = false | '
             '.root.path = "nosuchdir"', name="config-missing-rootfs"),
    scenario(Cmd("run", "{id}", differs=Differs(
        "a config of a future major version may mean what pyrunc cannot know: refused, "
        "where runc runs it", runc_refusal(1, "major version"))),
             jq='.process.terminal = false | .process.args = ["true"] | .ociVersion = "9.0.0"',
             name="config-future-version"),
    scenario(Cmd("create", "{id}"), Cmd("list", "-q"),
             Host(lambda side: open(os.path.join(side.bundle, "config.json"), "w").write("{")),
             Cmd("create", "{id}"), Cmd("list", "-q"),
             jq='.process.terminal = false', name="config-not-json"),
    scenario(Cmd("run", "-b", "{dir}/nonexistent", "{id}"), name="bundle-missing"),
    scenario(Cmd("run", "-d", "{id}", stdout="ignore"), Cmd("run", "-d", "{id}"),
             Cmd("create", "{id}"), jq=SLEEP, name="id-in-use"),
    scenario(Cmd("run", "-d", "--pid-file", "{dir}/pid", "{id}", stdout="ignore"),
             File("{dir}/pid"),
             Host(lambda side: open(side.expand("{dir}/pid")).read() == str(
                 side.state(side.ids[0])["pid"])),
             jq=SLEEP, name="pid-file"),
    scenario(Cmd("run", "--keep", "{id}"), Cmd("state", "{id}", stdout="json-values"),
             Cmd("delete", "{id}"), jq='.process.terminal = false | .process.args = ["true"]',
             name="run-keep"),

    # --- every other flag of runc's (test_coverage.py holds each one to a scenario) -----------
    scenario(Cmd("h", stdout="help"), Cmd("h", "exec", stdout="help"), name="help-alias-h"),
    scenario(Cmd("spec", "-b", "{dir}"), Host(_spec_text), name="spec-short-bundle"),
    scenario(Cmd("run", "--detach", "--bundle", "{bundle}", "{id}", stdout="ignore"),
             WaitStatus("running"), Cmd("list", "--quiet"),
             Cmd("ps", "--format", "json", "{id}", stdout="json"),
             Cmd("ps", "-f", "json", "{id}", "-ef", stdout="json"),
             Cmd("ps", "{id}", "-e", "-o", "pid,user,args", stdout="table"),
             Cmd("kill", "--all", "{id}", "KILL"), WaitStatus("stopped"),
             Cmd("delete", "{id}"), Cmd("list", "--quiet"),
             jq=SLEEP, name="long-flags-run-list-ps-kill"),
    scenario(Cmd("run", "--no-pivot", "{id}"),
             jq='.process.terminal = false | .process.args = ["sh", "-c", '
             f'{json.dumps(VIEWS["mounts"] + "; ls /")}]', name="run-no-pivot-view"),
    scenario(write_file("{dir}/fd3", "three\n"), write_file("{dir}/fd4", "four\n"),
             Cmd("run", "--preserve-fds", "2", "{id}", fds=("{dir}/fd3", "{dir}/fd4")),
             Cmd("run", "{id}", fds=("{dir}/fd3",)),
             jq='.process.terminal = false | .process.args = ["sh", "-c", '
             f'{json.dumps(FD_VIEW)}]', name="run-preserve-fds-view"),
    scenario(write_file("{dir}/fd3", "three\n"),
             Cmd("create", "--bundle", "{bundle}", "--no-pivot", "--no-new-keyring",
                 "--preserve-fds", "1", "{id}", fds=("{dir}/fd3",)),
             Cmd("start", "{id}"), WaitStatus("stopped"),
             File("{bundle}/rootfs/out", "exact"), Cmd("delete", "{id}"),
             jq='.process.terminal = false | .process.args = ["sh", "-c", '
             f'{json.dumps("{ " + FD_VIEW + "; } >/out 2>&1")}]',
             name="create-long-flags"),
    scenario(Cmd("run", "-d", "{id}", stdout="ignore"), WaitStatus("running"),
             write_file("{dir}/fd3", "three\n"),
             Cmd("exec", "--user", "1000:1000", "--additional-gids", "5", "{id}", "id"),
             Cmd("exec", "-c", "CAP_SYS_ADMIN", "{id}", "grep", "CapBnd", "/proc/self/status"),
             Cmd("exec", "--detach", "{id}", "sleep", "1"),
             Cmd("exec", "--tty", "{id}", "sh", "-c", "tty; echo tty-done", tty=True),
             Cmd("exec", "--preserve-fds", "1", "{id}", "sh", "-c", FD_VIEW,
                 fds=("{dir}/fd3",)),
             # into a paused container the process starts frozen: exec returns once resumed
             Cmd("pause", "{id}"),
             Cmd("exec", "--ignore-paused", "{id}", "echo", "ran", background=True),
             Cmd("state", "{id}", stdout="json-values"),
             Cmd("resume", "{id}"), Wait(),
             jq=SLEEP, name="exec-long-flags"),
    scenario(Cmd("run", "-d", "{id}", stdout="ignore"), WaitStatus("running"),
             Cmd("update", "--memory-reservation", "32m", "--cpuset-mems", "0",
                 "--blkio-weight", "300", "--cpu-rt-period", "900000", "--cpu-rt-runtime", "0",
                 "{id}"),
             cgroup_files("memory/memory.soft_limit_in_bytes", "cpuset/cpuset.mems",
                          "cpu/cpu.rt_period_us", "cpu/cpu.rt_runtime_us"),
             Cmd("update", "--kernel-memory", "64m", "{id}", differs=Differs(
                 KMEM, kmem_differs(1, "memory.kernel"))),
             Cmd("update", "--kernel-memory-tcp", "64m", "{id}", differs=Differs(
                 KMEM, kmem_differs(0, ""))),
             cgroup_files("memory/memory.kmem.tcp.limit_in_bytes", differs=Differs(
                 KMEM, lambda runc, pyrunc: pyrunc == [f"{64 << 20}\n"] != runc)),
             Cmd("update", "--l3-cache-schema", "L3:0=f", "{id}"),
             Cmd("update", "--mem-bw-schema", "MB:0=70", "{id}"),
             Cmd("update", "--resources", "-", "--pids-limit", "5", "{id}",
                 input='{"pids": {"limit": 66}}'),
             cgroup_files("pids/pids.max"),
             *(Cmd("update", *flags, "{id}", differs=Differs(
                 "later runc's update flags (and --cpu-shares for --cpu-share), hidden from "
                 "the help: engines written for a newer runc pass them", later_flag))
               for flags in (("--cpu-shares", "512"), ("--cpu-quota", "20000", "--cpu-burst",
                                                       "1000"))),
             cgroup_files("cpu/cpu.shares", "cpu/cpu.cfs_burst_us", differs=Differs(
                 "as above", lambda runc, pyrunc: pyrunc == ["512\n", "1000\n"] != runc)),
             Cmd("update", "--cpu-idle", "1", "{id}", differs=Differs("as above", later_flag)),
             cgroup_files("cpu/cpu.idle", differs=Differs(
                 "as above", lambda runc, pyrunc: pyrunc == ["1\n"] != runc)),
             jq=SLEEP, name="update-other-flags"),
    scenario(Cmd("run", "-d", "{id}", stdout="ignore"), WaitStatus("running"),
             Cmd("update", "--pids-limit", "0", "{id}"), cgroup_files("pids/pids.max"),
             Cmd("update", "--pids-limit", "-1", "{id}"), cgroup_files("pids/pids.max"),
             Cmd("update", "--pids-limit", "0", "{id}"), cgroup_files("pids/pids.max"),
             jq=SLEEP + ' | .linux.resources.pids.limit = 40', name="update-pids-limit-zero"),
    scenario(Cmd("run", "-d", "{id}", stdout="ignore"), WaitStatus("running"),
             Cmd("events", "--interval", "100ms", "{id}", background=True),
             dl.output_lines(1),
             Cmd("kill", "{id}", "KILL"), WaitStatus("stopped"),
             dl.output_lines(2),  # the stream goes on while the container is stopped
             Cmd("delete", "{id}"),  # and ends when it is deleted
             Wait(stdout="json-lines"), jq=SLEEP, name="events-stream"),
    # config kernel memory limits: runc warns and ignores both
    scenario(Cmd("run", "{id}", differs=Differs(KMEM, kmem_differs(0, ""))),
             jq='.process.terminal = false | .process.args = ["sh", "-c", "cat '
             '/sys/fs/cgroup/memory/memory.kmem.tcp.limit_in_bytes"] | '
             '.linux.resources.memory.kernelTCP = 67108864', name="config-kernel-tcp-memory"),
    scenario(Cmd("run", "{id}", differs=Differs(KMEM, kmem_differs(1, "memory.kernel"))),
             Cmd("list", "-q"),
             jq='.process.terminal = false | .process.args = ["true"] | '
             '.linux.resources.memory.kernel = 67108864', name="config-kernel-memory"),
    # a whole script as people write them: each runtime's own `spec`, edited with jq, a
    # detached container on a terminal an engine-like receiver holds, then exec, ps,
    # events, update, kill and delete
    scenario(Host(lambda side: os.remove(side.expand("{bundle}/config.json"))),
             Cmd("spec"),
             jq_in_place("{bundle}/config.json", '.process.args = ["sh", "-c", "echo up; '
                         'exec sleep 1000"] | .hostname = "scripted" | '
                         '.linux.resources.pids = {"limit": 64}'),
             receive_console(),
             Cmd("run", "-d", "--console-socket", "{dir}/console.sock", "--pid-file",
                 "{dir}/pid", "{id}"),
             WaitStatus("running"),
             Cmd("exec", "{id}", "sh", "-c", "hostname; cat /sys/fs/cgroup/pids/pids.max"),
             Cmd("exec", "-e", "X=1", "{id}", "sh", "-c", "echo $X"),
             Cmd("ps", "{id}", stdout="table"),
             Cmd("events", "--stats", "{id}", stdout="json-top"),
             Cmd("update", "--pids-limit", "32", "--memory", "128m", "{id}"),
             Cmd("exec", "{id}", "cat", "/sys/fs/cgroup/pids/pids.max",
                 "/sys/fs/cgroup/memory/memory.limit_in_bytes"),
             Cmd("kill", "{id}", "KILL"), WaitStatus("stopped"),
             console_output(),
             Cmd("delete", "{id}"), Cmd("list", "-q"),
             name="script-spec-jq-console-exec-ps-events-update"),
    scenario(Cmd("run", "-d", "{id}", stdout="ignore"), WaitStatus("running"),
             Cmd("checkpoint", "--image-path", "{dir}/img", "--work-path", "{dir}/work",
                 "--parent-path", "{dir}/parent", "--leave-running", "--tcp-established",
                 "--ext-unix-sk", "--shell-job", "--lazy-pages", "--status-fd", "5",
                 "--page-server", "127.0.0.1:1", "--file-locks", "--pre-dump",
                 "--manage-cgroups-mode", "soft", "--empty-ns", "network", "--auto-dedup",
                 "{id}", differs=Differs("no CRIU support", both_fail(1, "CRIU"))),
             Cmd("state", "{id}", stdout="json-values"),
             jq=SLEEP, name="checkpoint-every-flag"),
    scenario(Cmd("restore", "--console-socket", "{dir}/console.sock", "--image-path",
                 "{dir}/img", "--work-path", "{dir}/work", "--tcp-established",
                 "--ext-unix-sk", "--shell-job", "--file-locks", "--manage-cgroups-mode",
                 "soft", "--bundle", "{bundle}", "--detach", "--pid-file", "{dir}/pid",
                 "--no-subreaper", "--no-pivot", "--empty-ns", "network", "--auto-dedup",
                 "--lazy-pages", "--lsm-profile", "apparmor:x", "--lsm-mount-context", "x",
                 "{id}", differs=Differs("no CRIU support", both_fail(1, "CRIU"))),
             Cmd("restore", "-b", "{bundle}", "-d", "{id}", differs=Differs(
                 "no CRIU support", both_fail(1, "CRIU"))),
             Cmd("list", "-q"), File("{dir}/pid"),
             jq=SLEEP, name="restore-every-flag"),
]


@pytest.mark.parametrize("scn", SCENARIOS)
def test_scenario(differential, scn):
    differential(scn)


def test_harness_sees_a_difference(differential):
    """The harness itself: two sides that differ (different container ids in the output)
    do not compare equal."""
    with pytest.raises(AssertionError, match="differ"):
        differential(Scenario("self-check", (Host(lambda side: os.path.basename(side.dir)),)))


def test_harness_fails_a_differs_check_that_returns_false(differential):
    """A Differs check that returns False (a lambda of comparisons) fails the scenario: it
    is not taken as a pass because it raised nothing."""
    with pytest.raises(AssertionError, match="not as recorded"):
        differential(Scenario("self-check-differs", (Host(lambda side: side.name, differs=Differs(
            "the sides' names", lambda runc, pyrunc: runc == pyrunc)),)))
