"""chatd benchmarks: the load driver (bench.driver) and the storage micro-benchmark (bench.storage)."""
