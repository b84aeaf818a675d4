"""Capacity planning for the GPU box (`ouzel plan`): engine model, simulation, search."""
