"""linux.netDevices: host network devices moved into the container's network namespace.

The move needs CAP_NET_ADMIN over the host's network namespace, which the intermediate
loses once it is in a new user namespace; so, like the idmapped mounts (idmap.Helper), a
helper forked by the intermediate while it is still in the host's namespaces does it once
the container's namespaces exist, before the init is forked.  For each device it reads
its permanent global addresses, moves it with RTM_NEWLINK (IFLA_NET_NS_FD and, for the
new name, IFLA_IFNAME, which may be a "%d" template), then, from inside the container's
network namespace, adds the addresses back and brings the link up (runtime-spec MUSTs).
The devices are never moved back: when the namespace goes away the kernel returns
physical devices and destroys virtual ones.

Netlink is spoken by hand (struct + socket): a few messages do not justify a dependency.
"""

import os
import socket
import struct

from ociruntime.errors import PyruncError
from ociruntime.libcontainer import monitor
from ociruntime.libcontainer import syscalls as sc

_RTM_NEWLINK, _RTM_GETLINK, _RTM_NEWADDR, _RTM_GETADDR = 16, 18, 20, 22
_NLM_F_REQUEST, _NLM_F_ACK, _NLM_F_EXCL, _NLM_F_CREATE, _NLM_F_DUMP = 1, 4, 0x200, 0x400, 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_IFLA_IFNAME, _IFLA_NET_NS_FD = 3, 28
_IFA_ADDRESS, _IFA_LOCAL, _IFA_BROADCAST, _IFA_FLAGS = 1, 2, 4, 8
_IFA_F_PERMANENT = 0x80
_RT_SCOPE_UNIVERSE = 0
_IFF_UP = 1


def check(cfg, ns_plan):
    devices = cfg.linux.net_devices
    if not devices:
        return
    if not ns_plan.has("network") or any(t == "network" for t, _ in ns_plan.join):
        raise PyruncError("linux.netDevices: needs a new network namespace of the "
                          "container's own")
    names = set()
    for host_name, dev in devices.items():
        where = f"linux.netDevices[{host_name!r}]"
        if not os.path.exists(f"/sys/class/net/{host_name}") or "/" in host_name:
            raise PyruncError(f"{where}: no such network device on the host")
        name = dev.name or host_name
        if len(name) > 15 or "/" in name or name in (".", "..") or not name.strip():
            raise PyruncError(f"{where}.name: {name!r} is not a valid interface name")
        if name in names and "%d" not in name:
            raise PyruncError(f"{where}.name: {name!r} is used twice")
        names.add(name)


# --- netlink ---------------------------------------------------------------------------------

def _attr(kind, payload):
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _attrs(data):
    out = {}
    while len(data) >= 4:
        length, kind = struct.unpack_from("=HH", data)
        if length < 4:
            break
        out[kind & 0x3FFF] = data[4:length]
        data = data[(length + 3) & ~3:]
    return out


class _Netlink:
    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                  socket.NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self):
        self.sock.close()

    def request(self, kind, flags, body):
        """Send one message; returns the payloads of the answers (a dump's parts), raising
        OSError for an error answer."""
        self.seq += 1
        msg = struct.pack("=LHHLL", 16 + len(body), kind, flags | _NLM_F_REQUEST, self.seq, 0)
        self.sock.send(msg + body)
        answers = []
        while True:
            data = self.sock.recv(1 << 16)
            while len(data) >= 16:
                length, mtype, _, seq, _ = struct.unpack_from("=LHHLL", data)
                payload = data[16:length]
                data = data[(length + 3) & ~3:]
                if seq != self.seq:
                    continue
                if mtype == _NLMSG_ERROR:
                    (err,) = struct.unpack_from("=i", payload)
                    if err:
                        raise OSError(-err, os.strerror(-err))
                    return answers
                if mtype == _NLMSG_DONE:
                    return answers
                answers.append((mtype, payload))
                if not flags & _NLM_F_DUMP:
                    return answers

    def links(self):
        """{ifindex: name}"""
        found = {}
        body = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, 0, 0, 0)
        for _, payload in self.request(_RTM_GETLINK, _NLM_F_DUMP, body):
            _, _, index, _, _ = struct.unpack_from("=BxHiII", payload)
            name = _attrs(payload[16:]).get(_IFLA_IFNAME, b"").rstrip(b"\0").decode()
            found[index] = name
        return found

    def addresses(self, index):
        """The permanent, global addresses of a link: [(family, prefixlen, attrs)]."""
        body = struct.pack("=BBBBI", socket.AF_UNSPEC, 0, 0, 0, 0)
        found = []
        for _, payload in self.request(_RTM_GETADDR, _NLM_F_DUMP, body):
            family, prefixlen, flags, scope, ifindex = struct.unpack_from("=BBBBI", payload)
            if ifindex != index or scope != _RT_SCOPE_UNIVERSE:
                continue
            attrs = _attrs(payload[8:])
            if _IFA_FLAGS in attrs:
                (flags,) = struct.unpack("=I", attrs[_IFA_FLAGS][:4])
            if not flags & _IFA_F_PERMANENT:
                continue
            keep = {k: v for k, v in attrs.items()
                    if k in (_IFA_ADDRESS, _IFA_LOCAL, _IFA_BROADCAST)}
            found.append((family, prefixlen, keep))
        return found

    def move(self, index, netns_fd, name):
        body = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, 0, 0)
        body += _attr(_IFLA_NET_NS_FD, struct.pack("=I", netns_fd))
        body += _attr(_IFLA_IFNAME, name.encode() + b"\0")
        self.request(_RTM_NEWLINK, _NLM_F_ACK, body)

    def add_address(self, index, family, prefixlen, attrs):
        body = struct.pack("=BBBBI", family, prefixlen, _IFA_F_PERMANENT, _RT_SCOPE_UNIVERSE,
                           index)
        for kind, value in attrs.items():
            body += _attr(kind, value)
        self.request(_RTM_NEWADDR, _NLM_F_ACK | _NLM_F_CREATE | _NLM_F_EXCL, body)

    def up(self, index):
        body = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, _IFF_UP, _IFF_UP)
        self.request(_RTM_NEWLINK, _NLM_F_ACK, body)


# --- the move ----------------------------------------------------------------------------------

def move_all(devices, target_pid):
    """Move each host device into target_pid's network namespace (run by the helper, in the
    host's namespaces)."""
    netns = os.open(f"/proc/{target_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    host = _Netlink()
    inside = None
    try:
        found = []
        for host_name, dev in devices.items():
            where = f"linux.netDevices[{host_name!r}]"
            try:
                with open(f"/sys/class/net/{host_name}/ifindex") as f:
                    index = int(f.read())
                found.append((where, index, dev.name or host_name, host.addresses(index)))
            except OSError as e:
                raise PyruncError(f"{where}: {e.strerror}") from None
        # a netlink socket stays in the namespace it was made in
        sc.setns(netns, sc.CLONE_NEWNET)
        inside = _Netlink()
        for where, index, name, addresses in found:
            before = set(inside.links())
            try:
                host.move(index, netns, name)
            except OSError as e:
                hint = " (the name is taken in the container)" if e.errno == 17 else ""
                raise PyruncError(f"{where}: moving it into the container: {e.strerror}"
                                  f"{hint}") from None
            try:
                (new_index,) = set(inside.links()) - before
                for family, prefixlen, attrs in addresses:
                    inside.add_address(new_index, family, prefixlen, attrs)
                inside.up(new_index)
            except (OSError, ValueError) as e:
                why = e.strerror if isinstance(e, OSError) else "the device did not arrive"
                raise PyruncError(f"{where}: in the container: {why}") from None
    finally:
        os.close(netns)
        host.close()
        if inside is not None:
            inside.close()


class Helper:
    """Forked by the intermediate before it joins or creates any namespace; finish(pid)
    has it move the devices into pid's network namespace."""

    def __init__(self, devices):
        self.devices = devices
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.pid = monitor.fork_or_close(mine, theirs)
        if self.pid == 0:
            mine.close()
            code = 1
            try:
                try:
                    move_all(devices, int(theirs.recv(64)))
                    theirs.send(b"ok")
                    code = 0
                except PyruncError as e:
                    theirs.send(b"error:" + str(e).encode())
                except OSError as e:
                    theirs.send(f"error:linux.netDevices: {e.strerror}".encode())
            finally:
                os._exit(code)
        theirs.close()
        self.sock = mine

    def finish(self, target_pid):
        try:
            self.sock.send(str(target_pid).encode())
            answer = self.sock.recv(65536)
        finally:
            self.sock.close()
            monitor.reap(self.pid)
        if answer != b"ok":
            text = answer.decode(errors="replace")
            raise PyruncError(text[6:] if text.startswith("error:") else
                              "linux.netDevices: the helper died")
