"""The starter goes when its containerd's address stops answering (tests/shim/
test_shim_starter.py has the rest).  Stopping this containerd would not show it: the
reaping parent kills whatever containerd leaves when it exits; its socket moved away for a
while does (containerd itself keeps running)."""

import os

from shimlib import gone, listening_on, wait_until


def test_the_starter_goes_when_its_containerd_stops_answering(containerd):
    c = containerd
    name = c.new_name()
    c.run(name, "sleep", "1000", flags=("-d",))
    (starter,) = c.starters()
    path = c.starter_socket()
    away = c.address + ".away"
    os.rename(c.address, away)
    try:
        # its idle check (every few seconds) finds the address dead: it removes its socket
        # and exits by itself
        wait_until(lambda: gone(starter),
                   "the starter's exit", timeout=30)
        assert not os.path.exists(path)
        assert not listening_on(path)
    finally:
        os.rename(away, c.address)
    # the task it started was never its child: it runs on, and the next start launches
    # another starter
    assert c.tasks()[name][1] == "RUNNING"
    assert c.run(c.new_name(), "echo", "again", flags=("--rm",)).stdout == "again\n"
    assert len(c.starters()) == 1 and c.starters()[0] != starter
