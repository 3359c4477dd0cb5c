"""The metadata system: the catalogue's replicated log, the control plane, placement, moves.

metadata_replica.py (the metadata group's replica: the catalogue log in
Paxos), catalogue_log.py (its records), catalogue_follower.py (every node
folds the log into its catalogue), control_plane.py (table operations and
splits on the leader), planning.py and placement.py (where a new group's
members go), replica_mover.py (replacing members), split_reports.py (what
nodes suggest splitting), role.py (all of it on one node).
"""
