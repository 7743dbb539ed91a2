"""The engine's core: presets and the toy world, loading a preset's parts, encoding prompts, seeds and noise,
walk pacing, blends of prompt embeddings, and the OpenVINO backend.

Below the features and the maps, above the provenance layer and the leaves: nothing here imports a feature.
"""
