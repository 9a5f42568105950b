"""Hostile command lines (issue 12): runc's flags with odd values, odd container ids.

Each runs against no container, a created or a running one of the campaign's bundle
(campaign.run_flags) and must exit 0 or print exactly one "pyrunc: " line, never a
traceback; afterwards the container (and any an accepted odd id made) is deletable and
nothing is left, and the host is unchanged.  {id} is the case's unique container id,
{bundle} the bundle, {dir} the campaign's scratch directory.
"""

import os

import campaign
import pytest

# the long run (see test_fuzz_configs.py) also gives every update flag text and ""
LONG = int(os.environ.get("PYRUNC_FUZZ_EXAMPLES", "80")) > 80
HUGE = str(2**64)
NEG = "-1"

CASES = [
    # --- global flags -------------------------------------------------------------------
    ("log-dir", ["--log", "{dir}", "state", "{id}"], None),
    ("log-format-xml", ["--log-format", "xml", "state", "{id}"], None),
    ("unknown-flag", ["--nope", "state", "{id}"], None),
    ("unknown-command", ["frobnicate", "{id}"], None),
    ("no-command", [], None),
    ("flag-no-value", ["create", "--bundle"], None),
    # --- create -------------------------------------------------------------------------
    ("pid-file-missing-dir", ["create", "-b", "{bundle}", "--pid-file", "{dir}/no/such/pid",
                              "{id}"], None),
    ("pid-file-is-dir", ["create", "-b", "{bundle}", "--pid-file", "{dir}", "{id}"], None),
    ("pid-file-empty", ["create", "-b", "{bundle}", "--pid-file", "", "{id}"], None),
    ("pid-file-long", ["create", "-b", "{bundle}", "--pid-file", "{dir}/" + "p" * 5000,
                       "{id}"], None),
    ("pid-file-proc", ["create", "-b", "{bundle}", "--pid-file", "/proc/self/fz", "{id}"],
     None),
    ("console-socket-missing", ["create", "-b", "{bundle}", "--console-socket",
                                "{dir}/no.sock", "{id}"], None),
    ("console-socket-file", ["create", "-b", "{bundle}", "--console-socket",
                             "{bundle}/config.json", "{id}"], None),
    ("console-socket-empty", ["create", "-b", "{bundle}", "--console-socket", "", "{id}"],
     None),
    ("preserve-fds-neg", ["create", "-b", "{bundle}", "--preserve-fds", NEG, "{id}"], None),
    ("preserve-fds-huge", ["create", "-b", "{bundle}", "--preserve-fds", HUGE, "{id}"], None),
    ("preserve-fds-2**31", ["create", "-b", "{bundle}", "--preserve-fds", str(2**31),
                            "{id}"], None),
    ("preserve-fds-text", ["create", "-b", "{bundle}", "--preserve-fds", "x", "{id}"], None),
    ("preserve-fds-1000", ["create", "-b", "{bundle}", "--preserve-fds", "1000", "{id}"],
     None),
    ("bundle-missing", ["create", "-b", "{dir}/no-bundle", "{id}"], None),
    ("bundle-file", ["create", "-b", "{bundle}/config.json", "{id}"], None),
    ("bundle-empty", ["create", "-b", "", "{id}"], None),
    # --- ids ----------------------------------------------------------------------------
    ("id-empty", ["create", "-b", "{bundle}", ""], None),
    ("id-dot", ["create", "-b", "{bundle}", "."], None),
    ("id-dotdot", ["create", "-b", "{bundle}", ".."], None),
    ("id-slash", ["create", "-b", "{bundle}", "{id}/x"], None),
    ("id-up", ["create", "-b", "{bundle}", "../{id}"], None),
    ("id-dash", ["create", "-b", "{bundle}", "--", "-{id}"], None),
    ("id-space", ["create", "-b", "{bundle}", "{id} x"], None),
    ("id-newline", ["create", "-b", "{bundle}", "{id}\nx"], None),
    ("id-unicode", ["create", "-b", "{bundle}", "{id}é"], None),
    ("id-long", ["create", "-b", "{bundle}", "{id}" + "x" * 4000], None),
    ("state-id-dotdot", ["state", ".."], None),
    ("delete-id-dot", ["delete", "--force", "."], None),
    ("kill-id-empty", ["kill", "", "KILL"], None),
    # --- start / state / delete in the wrong state ---------------------------------------
    ("start-missing", ["start", "{id}"], None),
    ("start-twice", ["start", "{id}"], "running"),
    ("delete-running", ["delete", "{id}"], "running"),
    ("pause-created", ["pause", "{id}"], "created"),
    ("resume-running", ["resume", "{id}"], "running"),
    ("exec-created", ["exec", "{id}", "true"], "created"),
    # --- kill signals -------------------------------------------------------------------
    *[(f"kill-{name}", ["kill", "{id}", sig], "running") for name, sig in (
        ("zero", "0"), ("neg", "-1"), ("65", "65"), ("999", "999"), ("huge", HUGE),
        ("SIGFOO", "SIGFOO"), ("lower", "sigkill"), ("9x", "9x"), ("empty", ""),
        ("RTMIN+1", "RTMIN+1"), ("SIGRTMAX", "SIGRTMAX"), ("SIGSTOP", "SIGSTOP"),
        ("plus", "+28"), ("superscript", "\u00b2"), ("plus-only", "+"))],
    ("kill-all", ["kill", "--all", "{id}", "KILL"], "running"),
    ("kill-created", ["kill", "{id}", "KILL"], "created"),
    # --- exec ---------------------------------------------------------------------------
    *[(f"exec-user-{name}", ["exec", "--user", user, "{id}", "true"], "running")
      for name, user in (("neg", "-1"), ("u32max", "4294967295"), ("u32max+1", "4294967296"),
                         ("neg-gid", "0:-1"), ("gid-u32max", "0:4294967295"),
                         ("three", "1:2:3"), ("colon", ":"), ("empty", ""),
                         ("name", "nobody"), ("unknown-name", "fz-nobody"),
                         ("huge", HUGE), ("nul-ish", "0\x01"))],
    ("exec-gids-neg", ["exec", "--additional-gids", NEG, "{id}", "true"], "running"),
    ("exec-gids-text", ["exec", "--additional-gids", "x", "{id}", "true"], "running"),
    ("exec-cwd-relative", ["exec", "--cwd", "rel", "{id}", "true"], "running"),
    ("exec-cwd-escape", ["exec", "--cwd", "/fz-out", "{id}", "true"], "running"),
    ("exec-cwd-dotdot", ["exec", "--cwd", "/../..", "{id}", "true"], "running"),
    ("exec-env-noeq", ["exec", "--env", "NOEQ", "{id}", "true"], "running"),
    ("exec-env-empty-name", ["exec", "--env", "=x", "{id}", "true"], "running"),
    ("exec-cap-unknown", ["exec", "--cap", "CAP_FZ", "{id}", "true"], "running"),
    ("exec-cap-lower", ["exec", "--cap", "sys_admin", "{id}", "true"], "running"),
    ("exec-process-missing", ["exec", "--process", "{dir}/no.json", "{id}"], "running"),
    ("exec-process-bad-json", ["exec", "--process", "{bundle}/rootfs/etc/passwd", "{id}"],
     "running"),
    ("exec-process-dir", ["exec", "--process", "{dir}", "{id}"], "running"),
    ("exec-preserve-fds-neg", ["exec", "--preserve-fds", NEG, "{id}", "true"], "running"),
    ("exec-preserve-fds-huge", ["exec", "--preserve-fds", HUGE, "{id}", "true"], "running"),
    ("exec-pid-file-dir", ["exec", "--pid-file", "{dir}", "{id}", "true"], "running"),
    ("exec-tty-no-socket", ["exec", "--tty", "{id}", "true"], "running"),
    ("exec-console-socket-file", ["exec", "--tty", "--console-socket",
                                  "{bundle}/config.json", "{id}", "true"], "running"),
    ("exec-no-command", ["exec", "{id}"], "running"),
    ("exec-missing-program", ["exec", "{id}", "/no/such/program"], "running"),
    ("exec-empty-program", ["exec", "{id}", ""], "running"),
    ("exec-cgroup-escape", ["exec", "--cgroup", "../..", "{id}", "true"], "running"),
    ("exec-cgroup-root", ["exec", "--cgroup", "/", "{id}", "true"], "running"),
    # --- update -------------------------------------------------------------------------
    *[(f"update-{flag}-{name}", ["update", f"--{flag}", value, "{id}"], "running")
      for flag in ("memory", "memory-swap", "memory-reservation", "cpu-shares", "cpu-quota",
                   "cpu-period", "cpu-rt-runtime", "cpuset-cpus", "cpuset-mems",
                   "pids-limit", "blkio-weight")
      for name, value in (("neg", NEG), ("huge", HUGE), ("text", "1x"), ("empty", ""))
      if LONG or name in ("neg", "huge")],
    ("update-cpuset-range", ["update", "--cpuset-cpus", "0-99999", "{id}"], "running"),
    ("update-memory-tiny", ["update", "--memory", "1", "{id}"], "running"),
    ("update-r-missing", ["update", "-r", "{dir}/no.json", "{id}"], "running"),
    ("update-r-bad-json", ["update", "-r", "{bundle}/rootfs/etc/passwd", "{id}"], "running"),
    ("update-r-dir", ["update", "-r", "{dir}", "{id}"], "running"),
    ("update-stopped", ["update", "--pids-limit", "10", "{id}"], "created"),
    # --- the rest -----------------------------------------------------------------------
    ("ps-format-xml", ["ps", "--format", "xml", "{id}"], "running"),
    ("events-interval-neg", ["events", "--interval", "-1s", "--stats", "{id}"], "running"),
    ("events-interval-text", ["events", "--interval", "x", "{id}"], "running"),
    ("list-format-xml", ["list", "--format", "xml"], None),
    ("spec-bundle-missing", ["spec", "--bundle", "{dir}/no-bundle"], None),
]

# Cases that fail on main today, in the scope of a branch fixing them now: id -> reason.
KNOWN = {}


@pytest.mark.parametrize("args,setup", [
    pytest.param(args, setup, id=case_id, marks=[pytest.mark.xfail(strict=True,
                                                                   reason=KNOWN[case_id])]
                 if case_id in KNOWN else [])
    for case_id, args, setup in CASES])
def test_flags(fuzz_env, args, setup):
    problems = campaign.run_flags(fuzz_env, args, setup)
    assert not problems, campaign.describe(problems)
