"""bids_facedecode: decode and reconstruct seen and imagined faces from fMRI.

After VanRullen & Reddy (2019), Communications Biology 2:193.
"""

__version__ = "0.1.0"
