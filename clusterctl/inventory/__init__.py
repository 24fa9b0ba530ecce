"""The site inventory: one YAML file that says what every rack and node should be.

Public surface: `load_inventory`, `check_inventory`, `Inventory`, `Node`, `Rack`,
`SecretRef`. Nothing here imports more than pydantic, ruamel and ClusterShell.
"""

from __future__ import annotations

from clusterctl.inventory.load import check_inventory, load_inventory
from clusterctl.inventory.secrets import SecretRef
from clusterctl.inventory.site import Inventory, Node, Rack

__all__ = ["Inventory", "Node", "Rack", "SecretRef", "check_inventory", "load_inventory"]
