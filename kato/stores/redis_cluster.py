"""An embedded Redis Cluster: ``masters`` masters, one replica each, from the same ``redis-server``.

For the tests and the workbench (``kato serve --redis-cluster 3``, the ``http`` target's
``redis_cluster=3``): every node is a :class:`~kato.stores.redis_server.RedisServer` with
cluster mode on, on a free loopback port and in a data directory of its own. The cluster is
formed through redis-py alone (no ``redis-cli``): each master is given an equal share of the
16384 slots (``CLUSTER ADDSLOTS``), every node meets the first (``CLUSTER MEET``), each replica
follows its master (``CLUSTER REPLICATE``); :meth:`EmbeddedCluster.start` returns when
``cluster_state:ok``, every node agrees on the slots, and every replica's link is up.

``cluster-node-timeout`` is short (``NODE_TIMEOUT_MS``) so that a killed master is replaced by its
replica within a couple of seconds; :meth:`EmbeddedCluster.fail_over` (the ``redis-failover``
fault) kills a master with SIGKILL, waits for that, and forces it (``CLUSTER FAILOVER TAKEOVER``
on the replica) if the election is slow. :attr:`EmbeddedCluster.url` is the ``redis+cluster://``
URL the session store understands (:func:`cluster_url`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, Self

import redis

from kato.stores.redis_server import RedisServer

__all__ = [
    "CLUSTER_SCHEME",
    "NODE_TIMEOUT_MS",
    "EmbeddedCluster",
    "cluster_url",
    "embedded_cluster",
    "is_cluster_url",
    "parse_cluster_url",
]

log = logging.getLogger("kato")

#: The URL scheme that makes the session store use redis-py's cluster client.
CLUSTER_SCHEME = "redis+cluster://"
#: ``cluster-node-timeout`` of the embedded nodes: how long a silent master takes to be failed.
NODE_TIMEOUT_MS = 1000
_SLOTS = 16384


def is_cluster_url(url: str) -> bool:
    """True for a ``redis+cluster://host:port[,host:port...]`` URL (nodes of a Redis Cluster)."""
    return url.startswith(CLUSTER_SCHEME)


def parse_cluster_url(url: str) -> tuple[str, list[tuple[str, int]]]:
    """For a ``redis+cluster://[credentials@]h1:p1,h2:p2/...`` URL: the ``redis://`` URL of its
    first node (credentials, options) and every node it names, the client's startup nodes (any
    one that answers gives the whole cluster; several survive the first one's failure)."""
    if not is_cluster_url(url):
        raise ValueError(f"not a {CLUSTER_SCHEME} URL: {url!r}")
    rest = url[len(CLUSTER_SCHEME) :]
    credentials, _, hosts_and_path = rest.rpartition("@")
    hosts, slash, path = hosts_and_path.partition("/")
    nodes = []
    for node in hosts.split(","):
        host, _, port = node.partition(":")
        nodes.append((host, int(port or 6379)))
    prefix = f"{credentials}@" if credentials else ""
    return f"redis://{prefix}{hosts.split(',')[0]}{slash}{path}", nodes


def cluster_url(nodes: list[tuple[str, int]]) -> str:
    """The store URL of a cluster with these nodes (``host``, ``port``)."""
    return CLUSTER_SCHEME + ",".join(f"{host}:{port}" for host, port in nodes)


def _info(client: redis.Redis, section: str) -> dict[str, Any]:
    return dict(client.info(section))


class EmbeddedCluster:
    """``masters`` masters and as many replicas, started, formed and stopped together.

    with EmbeddedCluster(3) as cluster:
        store = RedisSessionStore(cluster.url)
    """

    def __init__(self, masters: int = 3) -> None:
        if masters < 1:
            raise ValueError(f"a cluster needs at least one master, got {masters}")
        self.masters: list[RedisServer] = []
        self.replicas: list[RedisServer] = []
        args = [
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            "--cluster-replica-validity-factor", "0",  # a replica may always take over
        ]  # fmt: skip
        for _ in range(masters):
            self.masters.append(RedisServer(extra_args=args))
            self.replicas.append(RedisServer(extra_args=args))

    @property
    def nodes(self) -> list[RedisServer]:
        return self.masters + self.replicas

    def _running(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    @property
    def url(self) -> str:
        """The store URL, naming every node (a client started while one is down still finds
        the others)."""
        return cluster_url([("127.0.0.1", node.port) for node in self.nodes])

    def client(self, node: RedisServer) -> redis.Redis:
        """A plain client of one node (close it after use)."""
        return redis.Redis(host="127.0.0.1", port=node.port, socket_timeout=5.0)

    # -- forming -----------------------------------------------------------------------------
    def start(self, *, timeout: float = 30.0) -> Self:
        """Start every node, form the cluster and wait until it is healthy."""
        try:
            for node in self.nodes:
                node.start()
            self._form(timeout)
        except BaseException:
            self.stop()
            raise
        log.info(
            "embedded redis cluster started",
            extra={"fields": {"ports": [node.port for node in self.nodes]}},
        )
        return self

    def _form(self, timeout: float) -> None:
        share = -(-_SLOTS // len(self.masters))
        for index, master in enumerate(self.masters):
            with self.client(master) as client:
                slots = range(index * share, min((index + 1) * share, _SLOTS))
                client.execute_command("CLUSTER", "ADDSLOTS", *slots)
        first = self.nodes[0]
        for node in self.nodes[1:]:
            with self.client(node) as client:
                client.execute_command("CLUSTER", "MEET", "127.0.0.1", first.port)
        deadline = time.monotonic() + timeout
        self._wait(deadline, self._all_known, "every node to know the others")
        for master, replica in zip(self.masters, self.replicas, strict=True):
            with self.client(master) as client, self.client(replica) as follower:
                follower.execute_command("CLUSTER", "REPLICATE", client.cluster("MYID"))
        self._wait(deadline, self.healthy, "cluster_state:ok with every replica in sync")

    def _all_known(self) -> bool:
        for node in self.nodes:
            with self.client(node) as client:
                if len(client.cluster("NODES")) < len(self.nodes):
                    return False
        return True

    def healthy(self) -> bool:
        """Every running node says ``cluster_state:ok`` and every running master has a replica
        whose link is up."""
        running = self._running()
        for node in running:
            with self.client(node) as client:
                if client.cluster("INFO").get("cluster_state") != "ok":
                    return False
                replication = _info(client, "replication")
                if replication.get("role") == "slave" and (
                    replication.get("master_link_status") != "up"
                ):
                    return False
        return self._replicated(running)

    def _replicated(self, running: list[RedisServer]) -> bool:
        masters = 0
        for node in running:
            with self.client(node) as client:
                replication = _info(client, "replication")
                if replication.get("role") == "master" and self._owns_slots(client):
                    masters += 1
                    if int(replication.get("connected_slaves", 0)) < 1:
                        return False
        return masters == len(self.masters)

    @staticmethod
    def _owns_slots(client: redis.Redis) -> bool:
        myself = [n for n in client.cluster("NODES").values() if "myself" in n["flags"]]
        return bool(myself and myself[0]["slots"])

    @staticmethod
    def _wait(deadline: float, condition: Callable[[], bool], what: str) -> None:
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if condition():
                    return
            time.sleep(0.05)
        raise RuntimeError(f"the embedded redis cluster timed out waiting for {what}")

    # -- faults ------------------------------------------------------------------------------
    def master_of(self, index: int = 0) -> tuple[RedisServer, RedisServer]:
        """The ``index``-th master now serving slots, and a replica that follows it."""
        running = self._running()
        serving: list[tuple[RedisServer, str]] = []
        for node in running:
            with self.client(node) as client:
                if _info(client, "replication").get("role") == "master" and self._owns_slots(
                    client
                ):
                    serving.append((node, client.cluster("MYID")))
        master, master_id = serving[index % len(serving)]
        for node in running:
            with self.client(node) as client:
                replication = _info(client, "replication")
                if replication.get("role") == "slave" and replication.get("master_port") == (
                    master.port
                ):
                    return master, node
        raise RuntimeError(f"master {master_id} has no running replica")

    def fail_over(self, *, index: int = 0, timeout: float = 10.0) -> dict[str, Any]:
        """SIGKILL a master and wait until its replica serves its slots; what happened.

        The replica is elected by itself after ``NODE_TIMEOUT_MS``; if it is not master after
        three times that, ``CLUSTER FAILOVER TAKEOVER`` makes it one.
        """
        master, replica = self.master_of(index)
        started = time.monotonic()
        master.kill()
        forced = False
        deadline = started + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError), self.client(replica) as client:
                if _info(client, "replication").get("role") == "master":
                    if client.cluster("INFO").get("cluster_state") == "ok":
                        break
                elif not forced and time.monotonic() - started > 3 * NODE_TIMEOUT_MS / 1000:
                    client.execute_command("CLUSTER", "FAILOVER", "TAKEOVER")
                    forced = True
            time.sleep(0.02)
        else:
            raise RuntimeError(f"replica on port {replica.port} did not take over in {timeout}s")
        return {
            "killed_port": master.port,
            "promoted_port": replica.port,
            "takeover_forced": forced,
            "failover_ms": round((time.monotonic() - started) * 1e3, 1),
        }

    def rejoin(self, *, timeout: float = 30.0) -> dict[str, Any]:
        """Start every killed node again (it rejoins as a replica) and wait until healthy."""
        started = time.monotonic()
        restarted = []
        for node in self.nodes:
            if node.process is None or node.process.poll() is not None:
                node.start()
                restarted.append(node.port)
        self._wait(time.monotonic() + timeout, self.healthy, "the cluster to heal")
        return {
            "restarted_ports": restarted,
            "heal_ms": round((time.monotonic() - started) * 1e3, 1),
        }

    def stop(self) -> None:
        """Stop every node (their data directories are removed)."""
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextlib.contextmanager
def embedded_cluster(masters: int) -> Iterator[str]:
    """The store URL of an embedded cluster of ``masters`` masters, for the block's duration."""
    with EmbeddedCluster(masters) as cluster:
        yield cluster.url
