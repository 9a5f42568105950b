"""The wider grouping a user can ask for: PYRUNC_SHIM_GROUP=namespace in containerd's
environment (which its shims inherit) puts every task of a namespace in one server."""

from test_shim_grouping import SANDBOX, _server_of

CONTAINERD_ENV = {"PYRUNC_SHIM_GROUP": "namespace"}


def test_one_server_for_the_namespace(containerd):
    c = containerd
    names = [c.new_name() for _ in range(3)]
    c.run(names[0], "sleep", "1000", flags=("-d",))
    c.run(names[1], "sleep", "1000", flags=("-d",))
    c.run(names[2], "sleep", "1000", flags=("-d", "--annotation", f"{SANDBOX}=pod"))
    assert len({_server_of(c, n) for n in names}) == 1
    assert len(c.servers()) == 1
