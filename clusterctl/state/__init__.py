"""The state store: what happened, per run and per node (see `clusterctl.state.store.Store`).

Kept empty of imports so that `import clusterctl.state` costs nothing; import
`clusterctl.state.store` where the store is needed.
"""
