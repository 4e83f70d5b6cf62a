"""hpcscale's benchmark: ``benchmarks/run`` (see docs/performance.md).

Not part of the installed package: it lives in the checkout and is run from it.
"""
