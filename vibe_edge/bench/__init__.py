"""Measurement's one home: the engine benchmark (`vibe-edge bench`), the numbers every
measurement shares (metrics), and the libraries behind the scripts in bench/ (the server load
generator, the conversion benchmark). Figures are ratios against a baseline measured in the
same run (docs/BENCHMARKS.md)."""
