"""Speed benchmarks behind `make perf`: each module measures one figure against a reference."""
