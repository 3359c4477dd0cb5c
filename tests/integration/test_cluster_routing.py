"""Pure parts of the cluster: placement across AZs, the router's route choice, configs."""
from __future__ import annotations

import json
from typing import Any


from triplica.common.topology import NodeSpec
from triplica.engine.node_config import load_node_config
from triplica.metadata.placement import placement
from triplica.cluster.local import node_specs


def test_placement_puts_three_replicas_in_three_zones() -> None:
    nodes = node_specs(nodes=7, azs=3, base_port=9000)
    zone = {n.id: n.az for n in nodes}
    for index in range(200):
        members = placement(nodes, f"token{index}/0")
        assert len(members) == 3 and len({zone[m] for m in members}) == 3
        assert placement(nodes, f"token{index}/0") == members  # same on every node
    assert placement(node_specs(3, 3, 9000), "any/0") == [1, 2, 3]


def test_node_config_json_and_toml(tmp_path: Any) -> None:
    nodes = [{"id": i, "az": f"az-{c}", "host": f"10.0.0.{i}", "http_port": 8001,
              "peer_port": 9001} for i, c in zip((1, 2, 3), "abc")]
    (tmp_path / "n.json").write_text(json.dumps({
        "node_id": 2, "az": "az-b", "data_dir": "/d", "http_port": 8001, "peer_port": 9001,
        "nodes": nodes}))
    config = load_node_config(str(tmp_path / "n.json"))
    assert config.node_id == 2 and config.nodes[0] == NodeSpec(1, "az-a", "10.0.0.1", 8001, 9001)
    toml = 'node_id = 3\naz = "az-c"\ndata_dir = "/d"\nhttp_port = 8001\npeer_port = 9001\n'
    for node in nodes:
        toml += ("[[nodes]]\n" + "".join(f'{k} = {json.dumps(v)}\n' for k, v in node.items()))
    (tmp_path / "n.toml").write_text(toml)
    assert load_node_config(str(tmp_path / "n.toml")).az == "az-c"
