"""Iterative deployment: the model registry, promotion gates and the product feedback loop."""
