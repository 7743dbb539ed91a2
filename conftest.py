"""Test set-up: offline, tiny preset, set before anything imports the kit's heavy modules."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("KIT_PRESET", "tiny")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
