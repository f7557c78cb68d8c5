"""seglab: image segmentation experiment platform."""

__version__ = "0.1.0"
