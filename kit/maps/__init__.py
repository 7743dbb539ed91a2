"""Maps of style space: open_clip embeddings, the one UMAP recipe and placer, the style atlas and its figure,
and collections (embeddings of many images in shards, maps at scale) in `kit.maps.collections`.
"""
