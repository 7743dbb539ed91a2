"""The limits every request and every record is checked against, in one place.

A leaf: the Studio, the features, the presets and the widgets read the same numbers, so a record read from
a file is held to the limits of a request typed by hand.
"""

MAX_PROMPT_CHARS = 5000  # characters of one prompt
MAX_STEPS = 150  # diffusion steps a request (or a preset's default) may ask for
MAX_GUIDANCE = 30.0  # classifier-free guidance scale, likewise
MAX_BATCH = 64  # images in one request, and in one batch of a record
MAX_RECORD_SIDE = 8192  # pixels: a restoration record keeps its source's size; the image reader caps what it reads
