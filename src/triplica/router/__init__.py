"""The request router's routing state: the constant-work partition map cache.

(The HTTP routing process itself is cluster/router.py.)
"""
