"""Image input/output, one module per stage: probe, decode, metadata, encode.

`veil.imageio` is the public face of this package; import from there.
"""
