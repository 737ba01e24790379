"""Reading BIDS inputs and writing BIDS derivatives. No math lives here."""
