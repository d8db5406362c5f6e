"""Building blocks shared by the methods: attention layers, positional encodings, heads, sequence encoders,
the cross-sequence alignment head, optimal transport and dynamic time warping."""
