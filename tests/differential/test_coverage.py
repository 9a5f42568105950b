"""Every runc command and flag is exercised by a differential scenario, or exempt with a
reason.

The list comes from runc itself (`runc --help`, `runc CMD --help`) plus what its help
hides (HIDDEN, read from runc 1.1.5's source), so a flag a later runc adds shows up here
as uncovered.  A scenario covers a flag when one of its Cmd steps passes it to that
command (long and short names count apart: scripts use both).

And the record of what differs on purpose agrees with the suite: every scenario with a
Differs step is a row of conformance/CHECKLIST.md's table, every scenario a row names
exists, and README's usage table has as many rows."""

import os
import re
import subprocess

import difflib_runc as dl
import pytest
import test_cli

# hidden from runc 1.1.5's help (update.go: Hidden: true), accepted all the same
HIDDEN = {"update": {"--kernel-memory", "--kernel-memory-tcp"}}

# (command, flag) or (command, None) that no scenario exercises, and why
EXEMPT = {
    ("init", None): "runc's internal re-exec entry point (the container's init), not a "
                    "command for users: it is in no help and pyrunc has its own stage",
}


def _options_of(section):
    """{flag name: takes a value} of an OPTIONS / GLOBAL OPTIONS section's lines
    ("   --bundle value, -b value  path to ...")."""
    flags = {}
    for line in section.splitlines():
        m = re.match(r"^   (-\S.*?)(?:  |$)", line)
        if m:
            for part in m.group(1).split(", "):
                name, _, value = part.partition(" ")
                flags[name] = value == "value"
    return flags


def _commands_of(help_text):
    commands, inside = set(), False
    for line in help_text.splitlines():
        if line.startswith("COMMANDS:"):
            inside = True
        elif inside and line.startswith("   "):
            commands |= {n.strip() for n in line.split("  ")[1].split(",") if n.strip()}
        elif inside:
            break
    return commands


def _runc_help(*args):
    return subprocess.run([dl.RUNC, *args, "--help"], capture_output=True, text=True,
                          timeout=dl.TIMEOUT, check=True).stdout


def runc_surface():
    """{command: {flag name: takes a value}}, "global" for the global flags, from runc's
    help and HIDDEN; `init` (runc's hidden re-exec command) with no flags."""
    main = _runc_help()
    surface = {"global": _options_of(main.split("GLOBAL OPTIONS:")[1]), "init": {}}
    for command in _commands_of(main):
        text = "" if command in ("help", "h") else _runc_help(command)
        surface[command] = _options_of(text.partition("\nOPTIONS:")[2])
        surface[command].update(dict.fromkeys(HIDDEN.get(command, ()), True))
    return surface


def exercised(scenarios, surface):
    """{(command, flag)} and {(command, None)} that the scenarios' Cmd steps use: the
    global flags before the command, the command's flags before its first argument.
    --root is on every command line the harness runs (SideRun.argv: each side's own)."""
    used = {("global", "--root")}
    for scn in scenarios:
        for step in (s for s in scn.steps if isinstance(s, dl.Cmd)):
            argv = [*step.global_args, *step.args]
            command, i = "global", 0
            while i < len(argv):
                arg = argv[i]
                if arg.startswith("-") and arg not in ("-", "--"):
                    name = arg.split("=")[0]
                    used.add((command, name))
                    takes = surface.get(command, {}).get(name, False)
                    i += 2 if takes and "=" not in arg else 1
                elif command == "global":
                    command = arg
                    used.add((command, None))
                    i += 1
                else:
                    break  # the command's first argument ends its flags (as urfave/cli)
    return used


@pytest.fixture(scope="module")
def surface(runc_bin):
    return runc_surface()


@pytest.fixture(scope="module")
def coverage(surface):
    scenarios = [p.values[0] for p in test_cli.SCENARIOS]
    used = exercised(scenarios, surface)
    wanted = {(c, None) for c in surface if c != "global"} | {
        (c, f) for c, flags in surface.items() for f in flags}
    return wanted, used


def figures(wanted, used):
    commands = {w for w in wanted if w[1] is None}
    flags = wanted - commands
    return (f"runc's commands exercised: {len(commands & used)}/{len(commands)}, flags "
            f"{len(flags & used)}/{len(flags)}, exempt {len(set(EXEMPT) & wanted)}")


def test_runc_help_is_read(surface):
    """The parser of runc's help finds what runc 1.1 is known to have."""
    assert {"create", "run", "exec", "update", "help", "h", "features"} <= set(surface)
    assert {"--debug", "--log", "--root", "--help", "-h", "--version",
            "-v"} <= surface["global"].keys()
    assert {"--env", "-e", "--cgroup", "--ignore-paused"} <= surface["exec"].keys()
    assert {"--kernel-memory", "--pids-limit", "-r"} <= surface["update"].keys()


def test_exercised_reads_a_command_line_as_runc_parses_it():
    surface = {"global": {"--log": True, "--debug": False}, "exec": {"-e": True, "-t": False}}
    steps = (dl.Cmd("exec", "-t", "-e", "A=1", "{id}", "sh", "-e", global_args=(
        "--log", "{dir}/log", "--debug")), dl.Cmd("help", "exec"), dl.Cmd("-h"))
    assert exercised([dl.Scenario("s", steps)], surface) == {
        ("global", "--root"), ("global", "--log"), ("global", "--debug"), ("exec", None),
        ("exec", "-t"), ("exec", "-e"), ("help", None), ("global", "-h")}


def test_every_runc_command_and_flag_is_exercised(coverage):
    wanted, used = coverage
    missing = sorted(wanted - used - set(EXEMPT), key=lambda p: (p[0], p[1] or ""))
    assert not missing, (f"{figures(wanted, used)}; no differential scenario exercises "
                         f"{missing}: add one to test_cli.SCENARIOS or a reasoned EXEMPT entry")


def test_exemptions_are_still_needed(coverage):
    wanted, used = coverage
    stale = sorted(set(EXEMPT) - (wanted - used), key=str)
    assert not stale, f"EXEMPT entries runc no longer has or a scenario now covers: {stale}"



# --- the record of the differences: conformance/CHECKLIST.md and README's table agree with
# the scenarios that assert one

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIFFERS_TITLE = "## Where pyrunc differs from runc on purpose"


def _table_rows(text, after):
    """The rows of the first markdown table after the line starting with `after`."""
    lines = text[text.index(after):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2:]:  # past the header and its |---| line
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def _read(*path):
    with open(os.path.join(REPO, *path)) as f:
        return f.read()


def test_every_asserted_difference_is_recorded_and_every_record_is_a_scenario():
    rows = _table_rows(_read("conformance", "CHECKLIST.md"), DIFFERS_TITLE)
    named = {name for row in rows for name in re.findall(r"`([a-z0-9-]+)`", row[-1])}
    ids = {p.id for p in test_cli.SCENARIOS}
    differing = {p.id for p in test_cli.SCENARIOS
                 if any(getattr(step, "differs", None) for step in p.values[0].steps)}
    assert not named - ids, f"CHECKLIST.md names scenarios there are not: {named - ids}"
    assert not differing - named, (
        f"scenarios asserting a difference that CHECKLIST.md does not list: "
        f"{differing - named}")


def test_readme_table_has_the_checklists_rows():
    checklist = _table_rows(_read("conformance", "CHECKLIST.md"), DIFFERS_TITLE)
    readme = _table_rows(_read("README.md"), "Where pyrunc differs from runc on purpose")
    assert len(readme) == len(checklist), (
        "README's usage table and CHECKLIST.md's list other differences: "
        f"{[r[0] for r in readme]} vs {[r[0] for r in checklist]}")
