"""Whole collections: which images (a folder or a list), their embeddings in resumable Parquet shards, the
engines that make them (this process, or Ray), and maps of them at scale.
"""
