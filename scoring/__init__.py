"""Page complexity scoring: pure numpy / scikit-image functions of page pixels.

Not implemented yet: `pipeline_metadata.complexity_score` is null until it is (see the routing
issue). Nothing here may import from gateway, providers or router.
"""
