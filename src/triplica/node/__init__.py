"""A storage node: the partition replicas one machine hosts, and the calls it answers.

`storage_node.py` opens the node's replicas (engine/), drives their Paxos
groups (replication/) and serves keyed and node requests; `calls.py` is
the node's side of the router-to-node protocol (router/node_client.py).
"""
