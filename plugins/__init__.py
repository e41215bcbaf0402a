"""zoo's built-in plugins, loaded through the same plugin manager and hooks as third-party ones.

torchvision_models and timm_models register their catalogues (catalogue.py; data/ holds the shipped
indexes, torchvision_catalogue.py and timm_catalogue.py read the installed libraries).
"""
