"""The ``paxos-kv`` command line: a click group whose commands run a node or talk to a cluster.

``main`` is the console entry point (``paxos-kv = "paxoskv.cli:main"``). The commands live
one idea per module: ``node_cmd`` (run a replica), ``kv_cmds`` (get, set, delete, keys,
watch), ``members_cmd`` (members, status), ``local_cluster`` (N nodes on loopback); the shared
cluster options are in ``cluster_options``, output formats in ``output``, and exit codes in
``errors``.
"""

from __future__ import annotations

from paxoskv.cli.cluster_options import CliState
from paxoskv.cli.main import main

__all__ = ["CliState", "main"]
