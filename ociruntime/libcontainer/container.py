"""Container: the OCI operations (create, start, state, kill, delete) and runc's `run`.

The CLI and the shim both call this module.  Operations that change a container hold its
directory lock; the status is derived (state.py), never stored.

create's code is in create.py; start's, kill's and delete's are in start.py, kill.py and
delete.py, which `pyrunc start`, `pyrunc kill` and `pyrunc delete` import instead of this
module.
"""

from ociruntime import paths
from ociruntime.errors import PyruncError, WrongState
from ociruntime.state import (
    CREATED,
    PAUSED,
    RUNNING,
    ContainerState,
    write_atomic,
)


class CreateOptions:
    """runc create's flags."""

    def __init__(self, bundle=".", pid_file=None, console_socket=None, preserve_fds=0,
                 no_pivot=False, no_new_keyring=False):
        self.bundle = bundle
        self.pid_file = pid_file
        self.console_socket = console_socket
        # run (not create) keeps the pty master itself: called with a dup of it
        self.keep_console = None
        self.preserve_fds = preserve_fds
        self.no_pivot = no_pivot
        self.no_new_keyring = no_new_keyring
        # the container's fds 0, 1, 2 when not the caller's own (the shim's fifos)
        self.stdio = None
        # a cgroups.prime_if_needed() already started by the caller (the CLI starts it
        # before its own imports, so more of the grace period is off create's path; on
        # Linux 5.7 and later there is none: the joins take no grace period)
        self.primed = None
        # the bundle's config read and parsed ahead (prepare_config), by a caller that
        # knew the bundle before the create was asked for (the shim's waiting worker)
        self.prepared = None


class Container:
    def __init__(self, root, container_id):
        self.state = ContainerState(root, container_id)
        self.id = container_id

    def create(self, opts):
        """Build the container and park its process in the exec stage (create.py: the
        other operations read none of its code).  Nothing is written before the config
        has been parsed and checked; on failure nothing is left."""
        from ociruntime.libcontainer.create import create

        return create(self, opts)

    # --- the other operations --------------------------------------------------------------
    def load(self):
        self.state.load()
        return self

    def status(self):
        return self.state.status()

    def start(self):
        """start.py: `pyrunc start` reads that module alone."""
        from ociruntime.libcontainer.start import start

        start(self.state)

    def kill(self, signum, all_processes=False):
        """kill.py: `pyrunc kill` reads that module alone."""
        from ociruntime.libcontainer.kill import kill

        kill(self.state, signum, all_processes)

    def delete(self, force=False):
        """delete.py: `pyrunc delete` reads that module alone."""
        from ociruntime.libcontainer.delete import delete

        delete(self.state, force)

    def pause(self):
        self._freeze(True)

    def resume(self):
        self._freeze(False)

    def _freeze(self, frozen):
        """pause/resume through the freezer (v1 freezer.state, v2 cgroup.freeze)."""
        st = self.state
        with st.locked():
            st.load()
            status = st.status()
            if frozen and status not in (RUNNING, CREATED):
                raise WrongState(f"container not running (it is {status})")
            if not frozen and status != PAUSED:
                raise WrongState(f"container not paused (it is {status})")
            from ociruntime.libcontainer import cgroups

            cgroups.from_record(st.record["cgroup"]).freeze(frozen)

    def update(self, resources, raw=None):
        """`update`: change the cgroup limits of a live container.  raw is the resources
        JSON the update stands for: it is merged into the recorded resources (runc keeps
        its config in its state the same way), so a later update of another field keeps
        what this one set, and a value that needs another (swap needs the memory limit on
        v2) takes it from the record.  New device rules replace the old ones."""
        st = self.state
        with st.locked():
            st.load()
            status = st.status()
            if status not in (CREATED, RUNNING, PAUSED):
                raise WrongState(f"container not running (it is {status})")
            from ociruntime.config import parse_resources
            from ociruntime.libcontainer import cgroups

            manager = cgroups.from_record(st.record["cgroup"])
            merged = None
            if raw is not None:
                merged = _merge_resources(st.record.get("resources") or {}, raw)
                mem = raw.get("memory")
                if mem and "swap" in mem and "limit" not in mem:
                    limit = (merged.get("memory") or {}).get("limit")
                    if limit is not None:
                        raw = dict(raw, memory=dict(mem, limit=limit))
                        resources = parse_resources(raw)
            if resources.devices:
                rules = resources.devices
                if merged is not None:
                    rules = parse_resources({"devices": merged["devices"]}).devices
                manager.apply_devices(rules)
            manager.set_resources(resources, update=True)
            if merged is not None:
                st.save(dict(st.record, resources=merged))

    def cgroup_manager(self):
        from ociruntime.libcontainer import cgroups

        return cgroups.from_record(self.state.record["cgroup"])

    def oci_state(self):
        return self.state.oci_state()

    def pids(self):
        from ociruntime.libcontainer import cgroups

        return cgroups.from_record(self.state.record["cgroup"]).pids()


def write_pid_file(path, pid):
    """--pid-file of create, run and exec: the bare pid, atomically (an error names the
    flag; the caller then undoes what the pid stands for, as runc does)."""
    try:
        write_atomic(paths.abspath(path), str(pid), 0o644)
    except OSError as e:
        raise PyruncError(f"--pid-file {path}: {e.strerror}") from None


def _merge_resources(saved, new):
    """runc update's merge: each value given replaces the recorded one; objects merge
    field by field, arrays (device rules, throttles, hugepage limits) replace whole."""
    merged = dict(saved)
    for key, value in new.items():
        old = merged.get(key)
        if type(value) is dict and type(old) is dict:
            merged[key] = _merge_resources(old, value)
        else:
            merged[key] = value
    return merged
