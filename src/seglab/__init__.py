"""seglab: image segmentation experiment platform."""

from seglab.resolvers import register_resolvers

__version__ = "0.1.0"

register_resolvers()
