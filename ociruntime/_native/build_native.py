"""CFFI builder (out-of-line API mode) for ociruntime._native._helper.

setup.py runs this at build time; at run time only the compiled module is imported, never
the `cffi` package itself.  The declarations below are the whole Python<->C surface.
"""

import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))

CDEF = """
int pr_unshare(int flags);
int pr_setns(int fd, int nstype);
int pr_mount(const char *source, const char *target, const char *fstype,
             unsigned long flags, const char *data);
int pr_umount2(const char *target, int flags);
int pr_pivot_root(const char *new_root, const char *put_old);
int pr_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve);
int pr_mount_setattr(int dirfd, const char *path, unsigned int flags, uint64_t attr_set,
                     uint64_t attr_clr, uint64_t propagation, uint64_t userns_fd);
int pr_open_tree(int dirfd, const char *path, unsigned int flags);
int pr_move_mount(int from_dirfd, const char *from_path, int to_dirfd, const char *to_path,
                  unsigned int flags);
int pr_sethostname(const char *name, size_t len);
int pr_setdomainname(const char *name, size_t len);
int pr_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4,
             unsigned long a5);
int pr_close_range(unsigned int first, unsigned int last, int flags);
int pr_execveat(int fd, char *const argv[], char *const envp[]);
int pr_loopback_up(void);
int pr_sched_setattr(uint32_t policy, uint64_t flags, int32_t nice, uint32_t priority,
                     uint64_t runtime, uint64_t deadline, uint64_t period);
int pr_ioprio_set(int which, int who, int ioprio);
int pr_personality(unsigned long persona);
int pr_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode);
int pr_join_session_keyring(const char *name);
int pr_keyctl_setperm(int serial, uint32_t perm);
long pr_bpf(int cmd, void *attr, unsigned int size);
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
with open(os.path.join(HERE, "helper.c")) as source:
    ffibuilder.set_source("ociruntime._native._helper", source.read())

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
