"""Build pyrunc: the C helper modules (_sys, and CFFI's), the static exec stage and the
shim's front.

The exec stage is a tiny static C program (ociruntime/_native/exec_stage.c) that every
container process ends in; it is compiled here with the system C compiler and shipped as
package data next to the CFFI module.  The shim's front (ociruntime/_native/shim_front.c)
is the containerd-shim-pyrunc-v2 binary: built in place only, beside the stage, and
installed by .ci/setup into the venv's bin, beside the Python shim it execs
(containerd-shim-pyrunc-v2-py, a script of this package).
"""

import os
import shutil
import subprocess

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

STAGE_SOURCE = os.path.join("ociruntime", "_native", "exec_stage.c")
STAGE_NAME = "exec-stage"
FRONT_SOURCE = os.path.join("ociruntime", "_native", "shim_front.c")
FRONT_NAME = "shim-front"
PROTO_DIR = os.path.join("shim", "proto")
# the CRI client of the tests (tests/cri): compiled only for an in-place (developer, CI)
# build, never into a package
TEST_PROTO_DIR = os.path.join("tests", "cri", "proto")


STAGE_FLAGS = ["-static", "-Os", "-s", "-Wall", "-Wextra", "-Wno-unused-parameter",
               "-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections"]
# the kernel's uapi headers the stage includes (linux/seccomp.h, linux/capability.h, ...):
# musl-gcc searches only musl's own include dir, so they are linked into one of their own
KERNEL_HEADER_DIRS = ("linux", "asm", "asm-generic")


class BuildWithStage(build_ext):
    """build_ext that also compiles the exec stage (static, so it runs in any rootfs)."""

    def run(self):
        super().run()
        out_dir = os.path.join(self.build_lib, "ociruntime", "_native")
        os.makedirs(out_dir, exist_ok=True)
        target = os.path.join(out_dir, STAGE_NAME)
        self._build_static(STAGE_SOURCE, target)
        commit = _git_commit()
        with open(os.path.join(out_dir, "COMMIT"), "w") as f:
            f.write(commit)
        if self.inplace:
            shutil.copy2(target, os.path.join("ociruntime", "_native", STAGE_NAME))
            self._build_static(FRONT_SOURCE, os.path.join("ociruntime", "_native", FRONT_NAME))
            with open(os.path.join("ociruntime", "_native", "COMMIT"), "w") as f:
                f.write(commit)
        if not os.environ.get("PYRUNC_SKIP_PROTOS"):  # .ci/setup-pythons' extra venvs
            self._compile_protos()

    def _build_static(self, source, target):
        """Linked statically against musl when musl-gcc is there (Debian's musl-tools): the
        stage is ~60 KiB instead of glibc's ~700 KiB, and every container parked between
        create and start maps (and holds in its sealed memfd) a copy of it; the shim's
        front, run twice per container, starts in ~0.15 ms of CPU against ~0.7 ms linked
        dynamically against glibc (ld.so). Without musl-gcc, or if it fails, glibc static,
        with a warning. $PYRUNC_STAGE_CC picks the compiler (then used as given); $CC is
        the glibc fallback's, as before."""
        cc = os.environ.get("PYRUNC_STAGE_CC") or shutil.which("musl-gcc")
        if cc:
            extra = [] if os.environ.get("PYRUNC_STAGE_CC") else self._kernel_headers()
            cmd = [cc, *extra, *STAGE_FLAGS, "-o", target, source]
            self.announce(" ".join(cmd), level=2)
            if subprocess.run(cmd, check=False).returncode == 0:
                return
            self.warn(f"{cc} failed to build {source}; falling back to glibc (static)")
        else:
            self.warn(f"musl-gcc not found (apt-get install musl-tools): {source} is "
                      "linked statically against glibc, ~10x larger (the exec stage: in "
                      "every parked container)")
        cmd = [os.environ.get("CC", "cc"), *STAGE_FLAGS, "-o", target, source]
        self.announce(" ".join(cmd), level=2)
        subprocess.check_call(cmd)

    def _kernel_headers(self):
        """-isystem DIR for musl-gcc: DIR has links to the system's kernel uapi headers
        (linux/, asm/ from the multiarch dir, asm-generic/), and nothing of glibc's."""
        try:
            multiarch = subprocess.run([os.environ.get("CC", "cc"), "-print-multiarch"],
                                       capture_output=True, text=True,
                                       check=False).stdout.strip()
        except OSError:
            multiarch = ""
        bases = ([os.path.join("/usr/include", multiarch)] if multiarch else []) + ["/usr/include"]
        inc = os.path.join(self.build_temp, "kernel-headers")
        os.makedirs(inc, exist_ok=True)
        for name in KERNEL_HEADER_DIRS:
            src = next((p for p in (os.path.join(b, name) for b in bases) if os.path.isdir(p)),
                       None)
            link = os.path.join(inc, name)
            if os.path.lexists(link):
                os.unlink(link)
            if src:
                os.symlink(src, link)
        return ["-isystem", inc]

    def _compile_protos(self):
        """The shim's protobuf messages (containerd's package names and field numbers,
        written in shim/proto/) compiled with grpcio-tools' protoc into *_pb2.py."""
        import grpc_tools
        from grpc_tools import protoc

        out = "." if self.inplace else self.build_lib
        include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
        dirs = [PROTO_DIR] + ([TEST_PROTO_DIR] if self.inplace else [])
        sources = sorted(os.path.join(d, name) for d in dirs for name in os.listdir(d)
                         if name.endswith(".proto"))
        args = ["protoc", "-I.", f"-I{include}", f"--python_out={out}", *sources]
        self.announce(" ".join(args), level=2)
        if protoc.main(args) != 0:
            raise RuntimeError("protoc failed on " + " ".join(sources))


def _git_commit():
    """The source commit, for `pyrunc --version` (runc prints its commit too)."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True,
                             text=True, check=True, cwd=os.path.dirname(os.path.abspath(__file__)))
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=os.path.dirname(
        os.path.abspath(__file__)), check=False).returncode
    return out.stdout.strip() + ("-dirty" if dirty else "")


setup(
    name="pyrunc",
    version="0.1.0",
    description="An OCI container runtime (runc-compatible) in Python, with a containerd shim",
    python_requires=">=3.11",
    packages=find_packages(include=["ociruntime", "ociruntime.*", "shim", "shim.*"]),
    package_data={"ociruntime._native": [STAGE_NAME, "COMMIT", "exec_stage.c", "helper.c",
                                         "fork_into.c"]},
    setup_requires=["cffi>=1.15", "grpcio-tools"],
    cffi_modules=["ociruntime/_native/build_native.py:ffibuilder",
                  "ociruntime/_native/build_seccomp.py:ffibuilder"],
    # helper.c's system calls, signals and unix sockets as a plain extension module (the
    # stable ABI): the CFFI module needs cffi's backend loaded too, ~0.9 ms of every
    # create's CPU against ~0.1, and kill or the shim's start would load it for one call
    ext_modules=[Extension("ociruntime._native._sys", ["ociruntime/_native/sysmodule.c"],
                           depends=["ociruntime/_native/helper.c",
                                    "ociruntime/_native/fork_into.c",
                                    "ociruntime/_native/sigsock.c",
                                    "ociruntime/_native/sha256.c"], py_limited_api=True,
                           extra_compile_args=["-Wall", "-Wextra", "-Wno-unused-parameter"])],
    install_requires=["cffi>=1.15", "protobuf"],
    extras_require={
        "test": ["pytest", "hypothesis", "jsonschema", "pyroute2"],
        "lint": ["ruff"],
    },
    cmdclass={"build_ext": BuildWithStage},
    # the `pyrunc` command: a lean launcher (see the file) instead of an entry point; the
    # same launcher is the shim's Python end (its name picks shim.cli), which the front
    # execs and which .ci/setup installs the front beside, as containerd-shim-pyrunc-v2
    scripts=["ociruntime/_bin/pyrunc", "shim/_bin/containerd-shim-pyrunc-v2-py"],
    zip_safe=False,
)
