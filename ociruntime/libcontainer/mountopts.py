"""Mount option strings -> mount(2) flags, propagation changes and the data string.

The table is mount(8)'s meaning of each option (runtime-spec: MUST for the listed ones).
Unknown options are filesystem data, joined with commas (spec SHOULD).
"""

from ociruntime.libcontainer import syscalls as sc

# option -> (clear?, flag)
FLAGS = {
    "async": (True, sc.MS_SYNCHRONOUS), "atime": (True, sc.MS_NOATIME),
    "defaults": (False, 0), "dev": (True, sc.MS_NODEV), "diratime": (True, sc.MS_NODIRATIME),
    "dirsync": (False, sc.MS_DIRSYNC), "exec": (True, sc.MS_NOEXEC),
    "iversion": (False, sc.MS_I_VERSION), "lazytime": (False, sc.MS_LAZYTIME),
    "loud": (True, sc.MS_SILENT), "mand": (False, sc.MS_MANDLOCK),
    "noatime": (False, sc.MS_NOATIME), "nodev": (False, sc.MS_NODEV),
    "nodiratime": (False, sc.MS_NODIRATIME), "noexec": (False, sc.MS_NOEXEC),
    "noiversion": (True, sc.MS_I_VERSION), "nolazytime": (True, sc.MS_LAZYTIME),
    "nomand": (True, sc.MS_MANDLOCK), "norelatime": (True, sc.MS_RELATIME),
    "nostrictatime": (True, sc.MS_STRICTATIME), "nosuid": (False, sc.MS_NOSUID),
    "nosymfollow": (False, sc.MS_NOSYMFOLLOW), "symfollow": (True, sc.MS_NOSYMFOLLOW),
    "relatime": (False, sc.MS_RELATIME), "remount": (False, sc.MS_REMOUNT),
    "ro": (False, sc.MS_RDONLY), "rw": (True, sc.MS_RDONLY), "silent": (False, sc.MS_SILENT),
    "strictatime": (False, sc.MS_STRICTATIME), "suid": (True, sc.MS_NOSUID),
    "sync": (False, sc.MS_SYNCHRONOUS),
    "bind": (False, sc.MS_BIND), "rbind": (False, sc.MS_BIND | sc.MS_REC),
}
PROPAGATION = {
    "private": sc.MS_PRIVATE, "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "shared": sc.MS_SHARED, "rshared": sc.MS_SHARED | sc.MS_REC,
    "slave": sc.MS_SLAVE, "rslave": sc.MS_SLAVE | sc.MS_REC,
    "unbindable": sc.MS_UNBINDABLE, "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}
# recursive attributes, applied with mount_setattr(AT_RECURSIVE) to the mount and every
# mount below it: option -> (attributes to set, attributes to clear).  The access-time
# setting is one value, not bits: changing it clears MOUNT_ATTR__ATIME and sets the new one.
_ATIME = sc.MOUNT_ATTR__ATIME
RECURSIVE = {
    "rro": (sc.MOUNT_ATTR_RDONLY, 0), "rrw": (0, sc.MOUNT_ATTR_RDONLY),
    "rnosuid": (sc.MOUNT_ATTR_NOSUID, 0), "rsuid": (0, sc.MOUNT_ATTR_NOSUID),
    "rnodev": (sc.MOUNT_ATTR_NODEV, 0), "rdev": (0, sc.MOUNT_ATTR_NODEV),
    "rnoexec": (sc.MOUNT_ATTR_NOEXEC, 0), "rexec": (0, sc.MOUNT_ATTR_NOEXEC),
    "rnodiratime": (sc.MOUNT_ATTR_NODIRATIME, 0), "rdiratime": (0, sc.MOUNT_ATTR_NODIRATIME),
    "rnosymfollow": (sc.MOUNT_ATTR_NOSYMFOLLOW, 0),
    "rsymfollow": (0, sc.MOUNT_ATTR_NOSYMFOLLOW),
    "rnoatime": (sc.MOUNT_ATTR_NOATIME, _ATIME),
    "rstrictatime": (sc.MOUNT_ATTR_STRICTATIME, _ATIME),
    "rrelatime": (sc.MOUNT_ATTR_RELATIME, _ATIME),
    # leaving noatime / strictatime / relatime: the kernel's default, relatime (mount(8))
    "ratime": (sc.MOUNT_ATTR_RELATIME, _ATIME),
    "rnostrictatime": (sc.MOUNT_ATTR_RELATIME, _ATIME),
    "rnorelatime": (sc.MOUNT_ATTR_STRICTATIME, _ATIME),
}
# pyrunc's own options: idmapped mounts, and a tmpfs filled with what it covers
EXTENSIONS = ("idmap", "ridmap", "tmpcopyup")
# options a later part of pyrunc implements
NOT_YET = frozenset()


class MountOptions:
    """The parsed form of one mount's `options` list."""

    __slots__ = ("flags", "propagation", "data", "is_bind", "recursive", "attr_set",
                 "attr_clr", "idmap", "tmpcopyup")

    def __init__(self, options):
        flags = 0
        self.propagation = []
        data = []
        attr_set = attr_clr = 0
        self.idmap = None  # "idmap" or "ridmap"
        self.tmpcopyup = False
        for opt in options:
            if opt in FLAGS:
                clear, flag = FLAGS[opt]
                flags = flags & ~flag if clear else flags | flag
            elif opt in PROPAGATION:
                self.propagation.append(PROPAGATION[opt])
            elif opt in RECURSIVE:
                to_set, to_clear = RECURSIVE[opt]
                if to_clear == _ATIME:
                    attr_set &= ~_ATIME
                    attr_clr |= _ATIME
                    attr_set |= to_set
                else:
                    attr_set = (attr_set & ~to_clear) | to_set
                    attr_clr = (attr_clr & ~to_set) | to_clear
            elif opt in ("idmap", "ridmap"):
                self.idmap = opt
            elif opt == "tmpcopyup":
                self.tmpcopyup = True
            else:
                data.append(opt)
        self.attr_set = attr_set
        self.attr_clr = attr_clr
        self.flags = flags
        self.data = ",".join(data)
        self.is_bind = bool(flags & sc.MS_BIND)
        self.recursive = bool(flags & sc.MS_REC)


def unsupported(options):
    """The options in the list that this build refuses for now."""
    return [opt for opt in options if opt in NOT_YET]
