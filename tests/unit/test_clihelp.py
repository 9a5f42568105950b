"""cli.py's tables (what main parses) and clihelp.py's texts (what help prints) are two
tables keyed by the same names: a text under a misspelt name would hide its flag from
the help without a word, and a command without texts would break `help`."""

from ociruntime import cli, clihelp

# update's later-runc flags and --cpu-share's other spelling, which runc 1.1's help does
# not show (cli.py parses them)
HIDDEN = {"update": {"kernel-memory", "kernel-memory-tcp", "cpu-burst", "cpu-idle",
                     "cpu-shares"}}


def _long_names(flags):
    return {flag.partition(":")[0].split(",")[0] for flag in flags.split()}


def test_every_command_has_its_texts():
    assert set(clihelp.TEXTS) == set(cli.COMMANDS)


def test_every_text_names_a_flag_of_its_command():
    for name, (_, _, _, texts) in clihelp.TEXTS.items():
        assert set(texts) <= _long_names(cli.COMMANDS[name][1]), name


def test_every_flag_has_a_text_unless_hidden():
    for name, (_, flags) in cli.COMMANDS.items():
        texts = clihelp.TEXTS[name][3]
        missing = {n for n in _long_names(flags) if not texts.get(n)}
        assert missing == HIDDEN.get(name, set()), name


def test_global_flags_and_their_texts_agree():
    assert set(clihelp.GLOBAL_HELP) == _long_names(cli.GLOBAL)


def test_help_lists_every_shown_flag():
    for name, (_, flags) in cli.COMMANDS.items():
        text = clihelp.command_help("pyrunc", name)
        for long in _long_names(flags) - HIDDEN.get(name, set()):
            assert f"--{long}" in text, (name, long)
