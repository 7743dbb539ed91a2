"""The features, one file each: walks, fusion, restoration, image to image, audits, drawings.

Each works on a Studio it is given (its seam: load, encode, noise, denoise, decode, finish), ends with
``register(Kind(...))`` (`kit.kinds`), and imports no other feature; the modules beside them (animation,
damage, audit_stats, audit_display) are one feature's helpers.
"""
