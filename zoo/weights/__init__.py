"""Weights: fetching, downloading, the cache, mirrors, weight sources, safe loading and inspection."""
