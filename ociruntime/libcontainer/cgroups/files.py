"""Reading and writing cgroup files for set_resources, and runc's v1 -> v2 conversions.

set_resources runs twice over the same resources: first with a dry Files (nothing is
written; every controller and file the resources need is looked up, so a missing one fails
before the cgroup changes at all), then for real.  Every error names the config field, the
file and the kernel's reason.
"""

import errno
import math
import os

from ociruntime.errors import PyruncError
from ociruntime.libcontainer.cgroups import write_file

FIELD = "linux.resources."


class WriteError(PyruncError):
    """The kernel refused a value; errno says why (callers retry on EINVAL)."""

    def __init__(self, message, err):
        super().__init__(message)
        self.errno = err


class Files:
    def __init__(self, dry):
        self.dry = dry

    @staticmethod
    def path(directory, name, what, hint=""):
        path = os.path.join(directory, name)
        if not os.path.exists(path):
            raise PyruncError(f"{FIELD}{what}: {name} does not exist in {directory}"
                              f"{hint or ''}")
        return path

    def write(self, directory, name, value, what, hint=""):
        path = self.path(directory, name, what, hint)
        if self.dry:
            return
        value = str(value)
        try:
            write_file(path, value)
        except OSError as e:
            raise WriteError(f"{FIELD}{what}: writing {value!r} to {path}: "
                             f"{os.strerror(e.errno)}", e.errno) from None

    def write_or_defer(self, directory, name, value, what, limit):
        """write(), but a value the kernel refuses (EINVAL) against a limit still in force
        is handed back, to be written again after the caller writes the new limit (when
        there is one: else the refusal stands); None when it was written."""
        try:
            self.write(directory, name, value, what)
        except WriteError as e:
            if not is_einval(e) or not limit:
                raise
            return value
        return None

    def read(self, directory, name, what):
        path = self.path(directory, name, what)
        if self.dry:
            return ""
        with open(path) as f:
            return f.read().strip()

    def read_int(self, directory, name, what):
        """An unsigned value; "max" reads as 2**64-1 (as runc's GetCgroupParamUint)."""
        return parse_uint(self.read(directory, name, what) or "0")


def oom_kill_count(path):
    """The oom_kill counter of a "key value" file (v1 memory.oom_control, v2
    memory.events), or None when it cannot be read."""
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except (OSError, ValueError):
        pass
    return None


def parse_uint(text):
    text = text.strip()
    if text == "max":
        return 2**64 - 1
    try:
        return int(text)
    except ValueError:
        return 0  # a negative v1 value such as -1: no limit


def is_einval(error):
    return getattr(error, "errno", None) == errno.EINVAL


# --- runc's conversions (opencontainers/cgroups utils.go), for cgroup v2 ------------------------
def cpu_shares_to_weight(shares):
    """cpu.shares [2, 262144] -> cpu.weight [1, 10000], a quadratic fit on the log scale that
    maps the defaults onto each other (1024 -> 100)."""
    if shares == 0:
        return 0
    if shares <= 2:
        return 1
    if shares >= 262144:
        return 10000
    log = math.log2(shares)
    exponent = (log * log + 125 * log) / 612.0 - 7.0 / 34.0
    return int(math.ceil(10 ** exponent))


def blkio_weight_to_io_weight(weight):
    """blkio.weight [10, 1000] -> io.weight [1, 10000], linearly."""
    if weight == 0:
        return 0
    return 1 + (weight - 10) * 9999 // 990


def swap_to_v2(swap, memory):
    """OCI memory.swap is memory+swap; v2's memory.swap.max is swap alone."""
    if memory == -1 and swap == 0:
        return -1  # memory unlimited and swap unset: both unlimited
    if swap in (-1, 0):
        return swap
    if memory == -1:
        return swap
    if memory == 0:
        raise PyruncError(f"{FIELD}memory.swap: unable to set a swap limit without a memory "
                          "limit")
    if memory < 0:
        raise PyruncError(f"{FIELD}memory.limit: invalid value {memory}")
    if swap < memory:
        raise PyruncError(f"{FIELD}memory.swap: memory+swap limit ({swap}) must be >= the "
                          f"memory limit ({memory})")
    return swap - memory


def check_memory_usage(files, directory, usage_file, mem, swap_usage_file=None):
    """memory.checkBeforeUpdate: reject a new limit at or below the current usage."""
    if files.dry or not mem.check_before_update:
        return
    usage = files.read_int(directory, usage_file, "memory.checkBeforeUpdate")
    if mem.swap is not None and mem.swap > 0:
        swap_usage = usage
        if swap_usage_file and os.path.exists(os.path.join(directory, swap_usage_file)):
            swap_usage = files.read_int(directory, swap_usage_file, "memory.checkBeforeUpdate")
        if mem.swap <= swap_usage:
            raise PyruncError(f"{FIELD}memory.swap: rejecting memory+swap limit {mem.swap} "
                              f"<= usage {swap_usage} (checkBeforeUpdate)")
    if mem.limit is not None and mem.limit > 0 and mem.limit <= usage:
        raise PyruncError(f"{FIELD}memory.limit: rejecting memory limit {mem.limit} <= usage "
                          f"{usage} (checkBeforeUpdate)")


def throttle_lines(blkio):
    """(field, kind, device) for the four throttle lists, kind as v2's io.max keys."""
    for field, kind, devices in (
            ("throttleReadBpsDevice", "rbps", blkio.throttle_read_bps_device),
            ("throttleWriteBpsDevice", "wbps", blkio.throttle_write_bps_device),
            ("throttleReadIOPSDevice", "riops", blkio.throttle_read_iops_device),
            ("throttleWriteIOPSDevice", "wiops", blkio.throttle_write_iops_device)):
        for index, device in enumerate(devices):
            yield f"blockIO.{field}[{index}]", kind, device


def memory_set(mem):
    return mem is not None and any(
        getattr(mem, name) is not None for name in mem.__slots__ if name != "check_before_update")


def cpu_set(cpu):
    return cpu is not None and any(getattr(cpu, name) not in (None, "")
                                   for name in cpu.__slots__)


def blkio_set(blkio):
    return blkio is not None and (
        blkio.weight is not None or blkio.leaf_weight is not None or blkio.weight_device
        or any(True for _ in throttle_lines(blkio)))
