"""Test support: a real gateway process and a fake vision server, used by tests and benchmarks."""
