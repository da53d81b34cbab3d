"""augsweep: which image augmentations actually lower validation loss?"""

__version__ = "0.1.0"
