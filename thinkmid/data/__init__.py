"""Corpus sources, prefix/suffix chunking and splits, and the interleaved thought format."""
