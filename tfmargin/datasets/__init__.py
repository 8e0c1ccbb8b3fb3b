"""Datasets that tfmargin can make for you, written in the formats of `tfmargin.data`:
`synthetic`, procedural faces with many identities (the demo's, the tests' and the benchmarks'
data)."""
