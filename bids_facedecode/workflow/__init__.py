"""The participant workflow in steps: inputs, latent spaces, streamed GLM, decoding."""
