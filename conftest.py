"""Test set-up: offline, tiny preset, a throwaway gallery.

Set before anything imports the kit's heavy modules; notebook kernels started
by nbval inherit this environment too.
"""

import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("KIT_PRESET", "tiny")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("KIT_GALLERY", tempfile.mkdtemp(prefix="kit-test-gallery-"))
# the tiny preset's saved models and the embedding cache: never the user's own ~/.cache/kit
os.environ.setdefault("KIT_CACHE", tempfile.mkdtemp(prefix="kit-test-cache-"))
os.environ.setdefault("KIT_LESSONS", tempfile.mkdtemp(prefix="kit-test-lessons-"))
