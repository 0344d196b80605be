"""The process around a study: signals, the garbage collector, process liveness, logs, folders.

- :mod:`tuner.runtime.interrupt`: Ctrl-C, SIGTERM and SIGHUP noted and raised where stopping is safe.
- :mod:`tuner.runtime.collector`: the start-up heap kept out of the garbage collector's walks.
- :mod:`tuner.runtime.liveness`: which process runs a trial, and whether it is still alive.
- :mod:`tuner.runtime.logs`: the libraries' own log lines kept off a person's terminal.
- :mod:`tuner.runtime.folders`: the per-user cache folder.
- :mod:`tuner.runtime.files`: files written whole or not at all.
- :mod:`tuner.runtime.ports`: a free TCP port on this machine.
"""

from tuner.faces import face

OFFERS = {
    "LongLivedHeap": "collector",
    "collector_paused": "collector",
    "exit_status": "interrupt",
    "free_port": "ports",
    "host": "liveness",
    "identity": "liveness",
    "quiet_libraries": "logs",
    "replaced": "files",
}
__all__ = sorted(OFFERS)
__getattr__ = face(__name__, OFFERS)
