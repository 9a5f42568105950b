"""containerd-shim-pyrunc-v2: a containerd runtime v2 shim over the pyrunc library.

The process model, and why:

    starter (one per containerd address and namespace; single-threaded, warm: the shim's
    |        and the runtime's modules imported; answers `start` and `delete`, shim.starter)
    +-- (a middle process that exits at once: the double fork)
        +-- shim server (below), one per task or pod: reparented, never the starter's
        +-- its spare (at most one, forked ahead while the starter is idle: a task's
            server-to-be and its Create's warm worker, handed the next task of its own
            group; it goes with the starter until then: shim.starter)

    shim server (subreaper; threads: ttrpc accept + connections, events, housekeeping,
    |            pty copies; the reaper in the main thread)
    +-- fork server (forked at startup, before the first thread; single-threaded)
    |   +-- worker (one per Create/Exec; a fork of the fork server; exits when answered)
    |       +-- the fork chain (intermediate, exec stage), prestart/createRuntime hooks,
    |           id-map helpers
    +-- container inits and exec'd processes (reparented here), poststart/poststop hooks,
        the publish binary, logging binaries (spawned here)

  (The server of one task's own group has no fork server: it spawns each worker, a fresh
  interpreter, itself; see below.)

- Nothing is forked from a process with other threads running Python.  A fork copies
  only the forking thread: a lock another thread held at that instant (malloc's, the
  import lock, a stream's) stays held in the child forever, and every fd the other
  threads had open at that instant is copied into it, so pipes whose EOF someone waits
  for stay open (concurrent Creates hung on it).  The server therefore forks its fork
  server (shim.forkserver) first thing, with the library imported, and forks no Python
  itself; Create and Exec are requests to the fork server (the request in a memfd, the
  stdio fds and a reply socket by SCM_RIGHTS), which forks a worker for each, so requests
  still run in parallel.  What the server itself starts is exec'd at once by
  posix_spawn or subprocess (no Python runs in the child): poststart and poststop hooks,
  the publish binary, logging binaries.
- Every exit reaches exactly one waiter.  A worker runs the library with its plain
  monitor (ociruntime.libcontainer.monitor, waitpid): it waits for its own children and
  nobody else can reap them.  The container init and exec'd processes lose their parent
  in the chain and end up the server's children (it is the subreaper): its reaper
  (shim.reaper) gets their exits.  In the server the reaper is the library's monitor
  too, so what the server starts is registered with the reaper before it can exit and
  its status comes from the reaper, never from a wait racing it.  The library never
  reaps a container process, so no exit status is ever invented.
- Errors are typed (ociruntime.errors; a worker's cross the socket by type name) and
  mapped to containerd's codes (shim.service.ERROR_CODES): NotFound, AlreadyExists,
  FailedPrecondition (wrong state), InvalidArgument (config), Unavailable (host limits),
  Unknown.

The alternative, a single-threaded event loop for the whole server, would have meant
rewriting ttrpc, events and stdio copying around one loop; a fork server changes only
who forks.  Its cost is one more process per server, idle between requests, sharing the
server's memory copy-on-write; but every page the server writes afterwards (a refcount
is a write) is then held twice, ~4 MiB PSS (gc.freeze() before the fork at least keeps
the collector from writing to all of them).  A pod's or namespace's server pays that
once for all its containers.  The server of a single task (its own group, idle timeout
0: the default for a container outside a pod) would pay it per container, +40%, for a
Create and a few Execs: it spawns each worker instead (posix_spawn of a fresh
interpreter, waited for through the reaper), which costs ~30 ms per request and no
memory in between (shim.forkserver.Spawner).  The first, its Create's, is forked before
the server's first thread (by the server's own process, a fork of the starter, or by
`start` just before it execs the server when no starter does it) and waits warm for the
request, its imports off the Create's path.

The starter makes every server a fork of a warm process instead of a fresh interpreter
(~25 ms of start-up and imports off each container's path, and the pages it has not
written since shared with every server), and answers the per-container `start` and
`delete` calls in-process: they only relay (shim.starter's protocol).  It forks
(twice) with no thread running, keeps no child, and a crash of it loses no container.
benchmarks/README.md has the figures.
"""
