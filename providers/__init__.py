"""OCR engines behind one interface.

Every provider turns a `PageImage` into a `RecognizedPage`: text lines with quads in the pixel
space of the image it was given. Normalization into blocks, markdown and relative geometry happens
once, in `gateway.work.layout`, so all engines produce the same output shape.

Errors: providers raise only `ProviderError` subclasses; the tree and the mapping of HTTP
outcomes to it are in `providers.errors`.
"""
