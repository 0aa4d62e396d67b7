"""Geometry of the loss around a point: flat parameter vectors, directions, projected curvature, surfaces."""
