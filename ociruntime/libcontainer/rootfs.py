"""The container's filesystem: mounts, default devices, /dev links, masked and read-only
paths, and the switch into the rootfs (pivot_root, or MS_MOVE + chroot with --no-pivot).

Runs in the container's init process, in its new mount namespace, before pivot_root.
Every destination is resolved inside the rootfs with openat2(RESOLVE_IN_ROOT), so a
symlink in the image can never point a mount outside it, and the mount goes onto the
resolved file through its /proc/self/fd/N handle, never by re-walking a path that could
have been swapped meanwhile (CVE-2021-30465).
"""

import posix

from ociruntime import paths
from ociruntime.config import idmapped, proc_mount_problem
from ociruntime.errors import PyruncError
from ociruntime.libcontainer import syscalls as sc
from ociruntime.libcontainer.mountopts import MountOptions

# the devices every container gets (runtime-spec "default devices")
DEFAULT_DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
                   ("urandom", 1, 9), ("tty", 5, 0))
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"),
             ("ptmx", "pts/ptmx"))
# filesystems that must be mounted on a real directory, never through a symlink
# (CVE-2019-16884, CVE-2019-19921, CVE-2023-27561)
STRICT_TYPES = frozenset({"proc", "sysfs"})
_O_PATH = posix.O_PATH | posix.O_CLOEXEC
_IN_ROOT = sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS
# one name in a directory of our own making, never a link
_BENEATH = sc.RESOLVE_BENEATH | sc.RESOLVE_NO_SYMLINKS | sc.RESOLVE_NO_MAGICLINKS
# st_mode's file types (stat's S_IF* values, the same on every Linux architecture): the
# stat module came with os, which create and run no longer import (ociruntime/paths.py)
S_IFDIR, S_IFCHR, S_IFBLK, S_IFREG, S_IFIFO, S_IFLNK = (
    0o040000, 0o020000, 0o060000, 0o100000, 0o010000, 0o120000)


def _file_type(mode):
    """stat.S_IFMT: the file type bits of st_mode."""
    return mode & 0o170000


def fd_path(fd):
    return f"/proc/self/fd/{fd}"


class Rootfs:
    """The rootfs of one container being built; owns an O_PATH fd of its root."""

    def __init__(self, path, bundle, userns=False, cgroup_v2=False):
        self.path = path
        self.bundle = bundle
        self.userns = userns
        self.cgroup_v2 = cgroup_v2
        self.fd = -1
        # {index in config mounts: fd of a detached, idmapped mount made by the parent, or
        # an O_PATH handle of a bind source (a user namespace)}
        self.mount_fds = {}
        # a pid namespace joined by the stage, not by the init (see procfs_pidns)
        self.pidns_fd = None
        self.stage_fd = None  # the sealed stage, which opens that procfs (procfs_pidns)
        self.joined_pidns_proc = False  # its procfs is on /proc
        self.late_readonly = []  # (destination, flags) of tmpfs mounts made ro at the end

    # --- resolution inside the root ------------------------------------------------------
    def open(self, dest, flags=_O_PATH, resolve=_IN_ROOT):
        """Open dest (a container path) inside the rootfs; OSError when it is missing."""
        return sc.openat2(self.fd, dest.lstrip("/") or ".", flags, 0, resolve)

    def make(self, dest, is_dir, resolve=_IN_ROOT):
        """Open dest inside the rootfs, creating missing directories (and a final file when
        is_dir is false) one component at a time, each resolved inside the root.  A
        dangling symlink on the way is followed as the kernel would inside the root (an
        absolute target from the root, ".." stopping there), and its target is created,
        as runc's MkdirAll in the container's jail does; never anything outside the root."""
        try:
            return self.open(dest, resolve=resolve)
        except FileNotFoundError:
            pass
        parts = [p for p in dest.split("/") if p and p != "."]
        if len(parts) > 1 and self._make_last(parts, is_dir, resolve):
            return self.open(dest, resolve=resolve)
        i = steps = 0
        while i < len(parts):
            steps += 1
            if steps > 4096:
                raise OSError(40, posix.strerror(40), dest)  # ELOOP: a symlink cycle
            try:
                posix.close(self.open("/".join(parts[:i + 1]), resolve=resolve))
                i += 1
                continue
            except FileNotFoundError:
                pass
            name = parts[i]
            parent = self.open("/".join(parts[:i]) or ".", _O_PATH | posix.O_DIRECTORY, resolve)
            try:
                _create(parent, name, is_dir or i < len(parts) - 1)
                i += 1
                continue
            except FileExistsError:
                target = _dangling_target(parent, name)  # None: raced, try again
            finally:
                posix.close(parent)
            if target is not None:
                if resolve & sc.RESOLVE_NO_SYMLINKS:
                    raise OSError(40, posix.strerror(40), dest)
                base = [] if target.startswith("/") else parts[:i]
                parts = base + [p for p in target.split("/") if p and p != "."] + parts[i + 1:]
                i = 0
        return self.open(dest, resolve=resolve)

    def _make_last(self, parts, is_dir, resolve):
        """make()'s usual case (a mount point in a directory that exists, such as
        sys/fs/cgroup/cpu or dev/pts): the last component created in its parent, opened
        as the walk below would open it, without opening every directory above it
        (4 openat2 and 3 close less a cgroup v1 hierarchy).  False when the walk must do
        it: the parent is missing, or the name exists (a dangling symlink, a race)."""
        try:
            parent = self.open("/".join(parts[:-1]), _O_PATH | posix.O_DIRECTORY, resolve)
        except OSError:
            return False
        try:
            _create(parent, parts[-1], is_dir)
            return True
        except FileExistsError:
            return False
        finally:
            posix.close(parent)

    # --- the steps, in order ------------------------------------------------------------
    def prepare(self, own_mount_ns=True):
        """Make the rootfs a mount point of its own in a mount namespace that does not
        propagate back to the host.  Without a mount namespace of its own the container
        mounts in the runtime's: the propagation of "/" there is not ours to change."""
        if own_mount_ns:
            sc.mount(None, "/", None, sc.MS_SLAVE | sc.MS_REC)
        sc.mount(self.path, self.path, None, sc.MS_BIND | sc.MS_REC)
        self.fd = posix.open(self.path, _O_PATH | posix.O_DIRECTORY)

    def mount_all(self, mounts, cgroup_binds):
        for index, entry in enumerate(mounts):
            where = f"mounts[{index}]"
            try:
                self.mount_one(entry, cgroup_binds, index)
            except OSError as e:
                raise PyruncError(f"{where}: mounting {entry.type or 'bind'} on "
                                  f"{entry.destination}: {e.strerror}") from None
            except PyruncError as e:
                raise PyruncError(f"{where}: {e}") from None

    def mount_one(self, entry, cgroup_binds, index=None):
        opts = MountOptions(entry.options)
        dest = entry.destination if entry.destination.startswith("/") else "/" + entry.destination
        source_fd = self.mount_fds.get(index)
        if source_fd is not None and idmapped(entry):
            self._move_idmapped(source_fd, opts, dest)
        elif opts.is_bind:
            self._bind(entry, opts, dest, source_fd)
        elif entry.type == "cgroup" and not self.cgroup_v2:
            self._cgroup_v1(dest, opts, cgroup_binds)
        else:
            self._fs(entry, opts, dest)
        if opts.propagation:
            target = self.open(dest)
            try:
                for flag in opts.propagation:
                    sc.mount(None, fd_path(target), None, flag)
            finally:
                posix.close(target)
        if opts.attr_set or opts.attr_clr:
            # rro, rnosuid, ...: this mount and every mount below it
            target = self.open(dest)
            try:
                sc.mount_setattr(target, "", sc.AT_EMPTY_PATH | sc.AT_RECURSIVE,
                                 opts.attr_set, opts.attr_clr)
            finally:
                posix.close(target)

    def _check_proc(self, target, dest, fstype, is_bind, source=None):
        """The config's /proc rule again on the resolved destination: a symlink in the
        image (/x -> /proc/sys) or a '..' must not lead a mount where the rule forbids.
        source: the bind source (a path or an fd), looked at for a bind onto /proc."""
        root = posix.readlink(fd_path(self.fd)).rstrip("/")
        resolved = posix.readlink(fd_path(target))
        if not resolved.startswith(root + "/"):
            return  # the root itself, or not a path in the rootfs (not with RESOLVE_IN_ROOT)
        inside = resolved[len(root):]
        is_procfs = None
        if inside == "/proc" and is_bind and source is not None:
            from ociruntime.libcontainer.sysctl import PROC_SUPER_MAGIC, fs_magic

            fd = source if isinstance(source, int) else posix.open(source, _O_PATH)
            try:
                is_procfs = fs_magic(fd) == PROC_SUPER_MAGIC
            finally:
                if fd != source:
                    posix.close(fd)
        problem = proc_mount_problem(inside, fstype, is_bind, is_procfs)
        if problem:
            posix.close(target)
            raise PyruncError(f"destination {dest} resolves to {inside}: {problem}")

    def _move_idmapped(self, tree, opts, dest):
        """Attach the idmapped mount the parent made (idmap.prepare) at dest."""
        target = self.make(dest, _file_type(posix.fstat(tree).st_mode) == S_IFDIR)
        self._check_proc(target, dest, None, True, tree)
        try:
            sc.move_mount(tree, "", target, "",
                          sc.MOVE_MOUNT_F_EMPTY_PATH | sc.MOVE_MOUNT_T_EMPTY_PATH)
        finally:
            posix.close(target)
        rest = opts.flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT)
        if rest:
            self._remount(dest, rest)

    def _bind(self, entry, opts, dest, source_fd=None):
        """source_fd: an O_PATH handle of the source opened by the host's root (a user
        namespace, see idmap.source_items), else the source is opened here, once: its
        type, the /proc rule and the mount all look at that one handle, so the path
        cannot be swapped between them."""
        source = entry.source or ""
        if not source.startswith("/"):
            source = paths.join(self.bundle, source)
        own = None
        if source_fd is None:
            try:
                own = source_fd = posix.open(source, _O_PATH)
            except OSError as e:
                raise PyruncError(f"bind source {source}: {e.strerror}") from None
        try:
            self._bind_fd(source_fd, opts, dest, entry.type)
        finally:
            if own is not None:
                posix.close(own)

    def _bind_fd(self, source_fd, opts, dest, fstype):
        target = self.make(dest, _file_type(posix.fstat(source_fd).st_mode) == S_IFDIR)
        self._check_proc(target, dest, fstype, True, source_fd)
        try:
            sc.mount(fd_path(source_fd), fd_path(target), None,
                     opts.flags & (sc.MS_BIND | sc.MS_REC))
        finally:
            posix.close(target)
        rest = opts.flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT)
        if rest:
            self._remount(dest, rest)

    def _remount(self, dest, flags):
        """Change the flags of the bind mount now at dest (opened afresh: an fd taken
        before the mount refers to what lies beneath it), keeping the flags a user
        namespace locks."""
        self._remount_fd(self.open(dest), flags)

    def _remount_fd(self, target, flags):
        """_remount of the mount open at target (an O_PATH fd, closed here)."""
        try:
            if self.userns:
                flags |= _locked_flags(target)
            sc.mount(None, fd_path(target), None, sc.MS_BIND | sc.MS_REMOUNT | flags)
        finally:
            posix.close(target)

    def _fs(self, entry, opts, dest):
        fstype = entry.type or "none"
        if fstype == "cgroup":  # on a v2 host "cgroup" means the unified hierarchy
            fstype = "cgroup2"
        strict = fstype in STRICT_TYPES
        resolve = _IN_ROOT | (sc.RESOLVE_NO_SYMLINKS if strict else 0)
        # runc gives a tmpfs on an existing directory that directory's mode, whatever
        # mode= says (a new mount point keeps the tmpfs's own mode)
        keep_mode = self._existing_mode(dest) if fstype == "tmpfs" else None
        try:
            target = self.make(dest, True, resolve)
        except OSError as e:
            if strict and e.errno == 40:  # ELOOP: a symlink in the way
                raise PyruncError(f"{fstype} may only be mounted on a real directory, "
                                  f"{dest} is a symlink") from None
            raise
        self._check_proc(target, dest, fstype, False)
        old = -1
        try:
            if strict and _file_type(posix.fstat(target).st_mode) != S_IFDIR:
                raise PyruncError(f"{fstype} may only be mounted on a directory: {dest}")
            if opts.tmpcopyup:
                if fstype != "tmpfs":
                    raise PyruncError("tmpcopyup is only for tmpfs mounts")
                # what the tmpfs will cover, still readable through this fd afterwards
                old = posix.open(fd_path(target),
                                 posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
            source = entry.source if entry.source and entry.type != "cgroup" else fstype
            if fstype == "proc" and self.pidns_fd is not None and old < 0:
                from ociruntime.libcontainer.procfs_pidns import mount_proc

                mount_proc(target, self.pidns_fd, self.stage_fd, opts.flags, opts.data)
                if dest.strip("/") == "proc":
                    self.joined_pidns_proc = True
                return
            # a read-only tmpfs (/dev with "ro" among them) stays writable until
            # finish_readonly(): /dev/pts, devices and mounts below it go in first (runc)
            rw_first = (old >= 0 or keep_mode is not None
                        or (fstype == "tmpfs" and opts.flags & sc.MS_RDONLY))
            sc.mount(source, fd_path(target), fstype,
                     opts.flags & ~sc.MS_REMOUNT & ~sc.MS_RDONLY if rw_first else
                     opts.flags & ~sc.MS_REMOUNT, opts.data or None)
            if rw_first:
                new = self.open(dest, posix.O_RDONLY | posix.O_DIRECTORY)
                try:
                    if old >= 0:
                        copy_tree(old, new)
                    if keep_mode is not None:
                        posix.fchmod(new, keep_mode)
                finally:
                    posix.close(new)
                if opts.flags & sc.MS_RDONLY:
                    self.late_readonly.append(
                        (dest, opts.flags & ~(sc.MS_REMOUNT | sc.MS_BIND | sc.MS_REC)))
        finally:
            posix.close(target)
            if old >= 0:
                posix.close(old)

    def _existing_mode(self, dest):
        """The permission bits of the directory at dest, or None when there is none."""
        try:
            fd = self.open(dest)
        except OSError:
            return None
        try:
            st = posix.fstat(fd)
        finally:
            posix.close(fd)
        return st.st_mode & 0o7777 if _file_type(st.st_mode) == S_IFDIR else None

    def _cgroup_v1(self, dest, opts, cgroup_binds):
        """type "cgroup" on a v1 host: a tmpfs holding a read-only-if-asked bind of the
        container's own cgroup directory from each hierarchy, as runc 1.1: the tmpfs itself
        stays read-write, with the mode of the directory it covers (sysfs's 0555).
        The tmpfs is opened once and each hierarchy's mount point is made and resolved
        in it, one component beneath it: it is ours, new and empty, in our own mount
        namespace (a walk from the root per hierarchy was 4 openat2 and 3 close more,
        ~20 us each hierarchy in the init's Python)."""
        keep_mode = self._existing_mode(dest)
        target = self.make(dest, True)
        try:
            sc.mount("tmpfs", fd_path(target), "tmpfs", sc.MS_NOSUID | sc.MS_NODEV
                     | sc.MS_NOEXEC, "mode=755")
        finally:
            posix.close(target)
        flags = (opts.flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT)
                 | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
        top = self.open(dest, posix.O_RDONLY | posix.O_DIRECTORY)
        try:
            if keep_mode is not None:
                posix.fchmod(top, keep_mode)
            for name, host_dir in cgroup_binds:
                try:
                    posix.mkdir(name, 0o755, dir_fd=top)
                except FileExistsError:
                    pass  # resolved below as any other: a directory, never a symlink
                sub = sc.openat2(top, name, _O_PATH, 0, _BENEATH)
                try:
                    sc.mount(host_dir, fd_path(sub), None, sc.MS_BIND | sc.MS_REC)
                finally:
                    posix.close(sub)
                # opened afresh: the fd above is the directory beneath the bind
                self._remount_fd(sc.openat2(top, name, _O_PATH, 0, _BENEATH), flags)
            comounted = [name for name, _ in cgroup_binds if "," in name]
            # cpu -> cpu,cpuacct and the like, as the host has them: programs open
            # /sys/fs/cgroup/<controller> (runc makes the same links)
            _symlinks(top, [(controller, name) for name in comounted
                            for controller in name.split(",")])
        finally:
            posix.close(top)

    def create_default_devices(self):
        """/dev/null and friends: mknod, or bind-mounted from the host in a user namespace
        (where mknod is not allowed)."""
        devfd = self.make("/dev", True)
        try:
            for name, major, minor in DEFAULT_DEVICES:
                _refuse_symlink(devfd, name)
                if self.userns:
                    target = self.make(f"/dev/{name}", False)
                    try:
                        sc.mount(f"/dev/{name}", fd_path(target), None, sc.MS_BIND)
                    finally:
                        posix.close(target)
                    continue
                try:
                    posix.mknod(name, S_IFCHR | 0o666, posix.makedev(major, minor),
                                dir_fd=devfd)
                except FileExistsError:
                    continue
                posix.chown(name, 0, 0, dir_fd=devfd, follow_symlinks=False)
            _symlinks(devfd, DEV_LINKS)
        finally:
            posix.close(devfd)

    def finish_readonly(self):
        """Make the read-only tmpfs mounts read-only, once everything below them is in
        place (runc's finalizeRootfs).  A remount of the tmpfs itself, not of the bind:
        its superblock is read-only too, as when it is mounted "ro" at once."""
        for dest, flags in self.late_readonly:
            target = self.open(dest)
            try:
                if self.userns:
                    flags |= _locked_flags(target)
                sc.mount(None, fd_path(target), None, sc.MS_REMOUNT | flags)
            finally:
                posix.close(target)
        self.late_readonly = []

    def make_cwd(self, cwd):
        """process.cwd: created when missing (0755, owned by the container's root) as runc
        does, before the rootfs may become read-only; resolved inside the root."""
        if not cwd or cwd == "/":
            return
        try:
            posix.close(self.make(cwd, True))
        except OSError as e:
            raise PyruncError(f"process.cwd: creating {cwd}: {e.strerror}") from None

    def mask_paths(self, paths):
        """maskedPaths: the container's /dev/null over files, an empty read-only tmpfs over
        directories, after the read-only paths (runc's order).  That /dev/null is opened
        inside the root without following any symlink and checked, through the fd that
        is then bound, to be the real 1:3 device: nothing the image or a volume planted
        there is bound over a path the container must not write (CVE-2025-31133)."""
        if not paths:
            return
        try:
            null = self.open("/dev/null", resolve=_IN_ROOT | sc.RESOLVE_NO_SYMLINKS)
        except OSError as e:
            raise PyruncError(f"linux.maskedPaths: the container's /dev/null: {e.strerror}; "
                              "refusing to mask with it") from None
        try:
            st = posix.fstat(null)
            if _file_type(st.st_mode) != S_IFCHR or st.st_rdev != posix.makedev(1, 3):
                raise PyruncError("linux.maskedPaths: the container's /dev/null is not the "
                                  "null device (1:3); refusing to mask with it")
            for path in paths:
                try:
                    target = self.open(path)
                except FileNotFoundError:
                    continue
                try:
                    if _file_type(posix.fstat(target).st_mode) == S_IFDIR:
                        sc.mount("tmpfs", fd_path(target), "tmpfs", sc.MS_RDONLY, None)
                    else:
                        sc.mount(fd_path(null), fd_path(target), None, sc.MS_BIND)
                except OSError as e:
                    raise PyruncError(f"linux.maskedPaths: {path}: {e.strerror}") from None
                finally:
                    posix.close(target)
        finally:
            posix.close(null)

    def readonly_paths(self, paths):
        for path in paths:
            try:
                target = self.open(path)
            except FileNotFoundError:
                continue
            try:
                sc.mount(fd_path(target), fd_path(target), None, sc.MS_BIND | sc.MS_REC)
                posix.close(target)
                target = self.open(path)  # the new mount, not the one beneath it
                sc.mount(None, fd_path(target), None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY
                         | sc.MS_REC | _locked_flags(target))
            except OSError as e:
                raise PyruncError(f"linux.readonlyPaths: {path}: {e.strerror}") from None
            finally:
                posix.close(target)

    def make_readonly(self):
        """root.readonly: the rootfs bind mount becomes read-only (before the switch)."""
        sc.mount(None, fd_path(self.fd), None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY
                 | _locked_flags(self.fd))

    def switch_root(self, no_pivot=False, own_mount_ns=True):
        """Make the rootfs the root: pivot_root and detach the old root, or MS_MOVE + chroot;
        only chroot when the container shares the runtime's mount namespace."""
        newroot = posix.open(self.path, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
        try:
            posix.fchdir(newroot)
            if not own_mount_ns:
                posix.chroot(".")
            elif no_pivot:
                self._hide_host_procfs()
                sc.mount(self.path, "/", None, sc.MS_MOVE)
                posix.chroot(".")
            else:
                oldroot = posix.open("/", posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
                try:
                    sc.pivot_root(".", ".")
                    posix.fchdir(oldroot)
                    sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
                    sc.umount2(".", sc.MNT_DETACH)
                finally:
                    posix.close(oldroot)
            posix.chdir("/")
        finally:
            posix.close(newroot)
            posix.close(self.fd)
            self.fd = -1

    def _hide_host_procfs(self):
        """--no-pivot leaves the host's mounts below the moved root, in the container's
        mount namespace: a full procfs or sysfs there would let a user namespace nested
        in the container mount its own ("fully visible" to the kernel), masks or not.
        Every one outside the rootfs is detached, or covered by a tmpfs where that is
        refused, as runc's msMoveRoot; the detach does not reach the host (rslave)."""
        root = posix.readlink(fd_path(self.fd)).rstrip("/")
        for point in full_proc_sysfs_mounts():
            if point == root or point.startswith(root + "/"):
                continue
            try:
                sc.mount(None, point, None, sc.MS_SLAVE | sc.MS_REC)
            except FileNotFoundError:
                continue  # gone with a parent detached before it
            try:
                sc.umount2(point, sc.MNT_DETACH)
            except OSError as e:
                if e.errno not in (1, 22):  # EPERM, EINVAL: locked, or no mount
                    raise PyruncError(f"--no-pivot: detaching {point}: {e.strerror}") from None
                sc.mount("tmpfs", point, "tmpfs", 0, None)

    @staticmethod
    def set_root_propagation(flag):
        if flag:
            sc.mount(None, "/", None, flag)


def _unescape(field):
    return (field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")
            .replace("\\134", "\\"))


def full_proc_sysfs_mounts():
    """Mount points of every procfs and sysfs mounted from its root (a "full" one) in this
    mount namespace, in mountinfo order."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            if fstype in ("proc", "sysfs") and fields[3] == "/":
                found.append(_unescape(fields[4]))
    return found


def mounts_under(path):
    """(mount id, mount point) of every mount at or below path in this mount namespace, in
    mountinfo order (a mount after the ones it sits on)."""
    prefix = path.rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = _unescape(fields[4])
            if point == path or point.startswith(prefix):
                found.append((int(fields[0]), point))
    return found


def detach_mounts_under(path, keep=()):
    """Lazily unmount every mount at or below path in this mount namespace, innermost
    first, except the mount ids in keep (what was there before create, e.g. the engine's
    overlay on the rootfs): what a container without a mount namespace of its own mounted
    in the runtime's.  Returns the mount points it could not detach."""
    keep = set(keep)
    mounts = [(mnt_id, point) for mnt_id, point in mounts_under(path) if mnt_id not in keep]
    return [point for mnt_id, point in reversed(mounts) if not detach_mount(mnt_id, point)]


def detach_mount(mnt_id, point):
    """Lazily unmount the mount mnt_id that mountinfo showed at point; False when it is
    still there.  The container shares this mount namespace and owns the directories on
    the way: between the read of mountinfo and the umount it can swap one for a symlink to
    a host path, so the umount goes through an fd opened at point (no symlink at the end)
    and checked to be that very mount, never through the path itself."""
    try:
        fd = posix.open(point, posix.O_PATH | posix.O_NOFOLLOW | posix.O_CLOEXEC)
    except OSError:
        return not _mounted(mnt_id)  # gone with its parent, or moved out of reach
    try:
        if _fd_mount_id(fd) != mnt_id:
            return not _mounted(mnt_id)
        try:
            sc.umount2(f"/proc/self/fd/{fd}", sc.MNT_DETACH)
        except OSError:
            return not _mounted(mnt_id)
        return True
    finally:
        posix.close(fd)


def _fd_mount_id(fd):
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("mnt_id:"):
                return int(line.split()[1])
    return None


def _mounted(mnt_id):
    with open("/proc/self/mountinfo") as f:
        return any(int(line.split(None, 1)[0]) == mnt_id for line in f)


def copy_tree(src, dst):
    """Copy the contents of directory fd src into directory fd dst: files, directories,
    symlinks, fifos and device nodes, with their modes, owners and times (tmpcopyup)."""
    for entry in posix.scandir(src):
        name = entry.name
        st = posix.stat(name, dir_fd=src, follow_symlinks=False)
        mode = st.st_mode
        if _file_type(mode) == S_IFDIR:
            posix.mkdir(name, 0o700, dir_fd=dst)
            flags = posix.O_RDONLY | posix.O_DIRECTORY | posix.O_NOFOLLOW | posix.O_CLOEXEC
            sub_src = posix.open(name, flags, dir_fd=src)
            sub_dst = posix.open(name, flags, dir_fd=dst)
            try:
                copy_tree(sub_src, sub_dst)
            finally:
                posix.close(sub_src)
                posix.close(sub_dst)
        elif _file_type(mode) == S_IFREG:
            fin = posix.open(name, posix.O_RDONLY | posix.O_NOFOLLOW | posix.O_CLOEXEC, dir_fd=src)
            try:
                fout = posix.open(name, posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL
                                  | posix.O_NOFOLLOW | posix.O_CLOEXEC, 0o600, dir_fd=dst)
                try:
                    while posix.sendfile(fout, fin, None, 1 << 20) > 0:
                        pass
                finally:
                    posix.close(fout)
            finally:
                posix.close(fin)
        elif _file_type(mode) == S_IFLNK:
            posix.symlink(posix.readlink(name, dir_fd=src), name, dir_fd=dst)
        elif _file_type(mode) in (S_IFIFO, S_IFCHR, S_IFBLK):
            posix.mknod(name, _file_type(mode) | 0o600, st.st_rdev, dir_fd=dst)
        else:
            continue  # a socket: it means nothing without its listener
        try:
            posix.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
        except OSError as e:
            if e.errno != 22:  # EINVAL: an owner the user namespace does not map
                raise
        if _file_type(mode) != S_IFLNK:
            posix.chmod(name, mode & 0o7777, dir_fd=dst)
        posix.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst, follow_symlinks=False)


def _create(parent, name, is_dir):
    """A directory (or an empty file) name in the directory open at parent, never
    following a symlink there; FileExistsError when something is there already."""
    if is_dir:
        posix.mkdir(name, 0o755, dir_fd=parent)
    else:
        posix.close(posix.open(name, posix.O_CREAT | posix.O_EXCL | posix.O_WRONLY
                               | posix.O_NOFOLLOW | posix.O_CLOEXEC, 0o644, dir_fd=parent))


def _symlinks(dirfd, links):
    """(name, target) symlinks in an open directory; one already there is left alone."""
    for name, target in links:
        try:
            posix.symlink(target, name, dir_fd=dirfd)
        except FileExistsError:
            pass


def _dangling_target(dirfd, name):
    """The target of the symlink name in dirfd, or None when name is not a symlink."""
    try:
        return posix.readlink(name, dir_fd=dirfd)
    except OSError:
        return None


def _refuse_symlink(devfd, name):
    """A default device the image planted as a symlink would stay the container's device
    (mknod finds it there) or have the host's device bound onto its target (user
    namespace): e.g. /dev/null -> /proc/sys/kernel/core_pattern (CVE-2025-31133)."""
    try:
        st = posix.stat(name, dir_fd=devfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if _file_type(st.st_mode) == S_IFLNK:
        raise PyruncError(f"/dev/{name} in the rootfs is a symlink, not a device; refusing it")


def _locked_flags(fd):
    """The per-mount flags already on a mount, which a remount must repeat."""
    flags = posix.fstatvfs(fd).f_flag
    result = 0
    for st_flag, ms_flag in ((posix.ST_NOSUID, sc.MS_NOSUID), (posix.ST_NODEV, sc.MS_NODEV),
                             (posix.ST_NOEXEC, sc.MS_NOEXEC), (posix.ST_NOATIME, sc.MS_NOATIME),
                             (posix.ST_NODIRATIME, sc.MS_NODIRATIME),
                             (posix.ST_RELATIME, sc.MS_RELATIME), (posix.ST_RDONLY, sc.MS_RDONLY)):
        if flags & st_flag:
            result |= ms_flag
    return result
