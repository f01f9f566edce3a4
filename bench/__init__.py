"""Benchmarks: trio-tls measured side by side with OpenSSL-backed equivalents in one run."""
