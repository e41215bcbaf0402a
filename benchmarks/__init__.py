"""Benchmarks: run each as a module from the repository root, `python -m benchmarks.NAME`.

(As modules they keep benchmarks/ off sys.path, so benchmarks/profile.py never shadows the standard
library's `profile`, which torch imports.)
"""
