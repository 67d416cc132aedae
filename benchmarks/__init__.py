"""The benchmark (`make bench`, `python -m benchmarks`): the pipeline beside a textbook
baseline, Faust's floor and the raw client.

Every contender reads the same pre-produced backlog on the embedded broker and Redis, in
one run; see `benchmarks.command` for the flags and `benchmarks.harness` for how
each figure is measured.
"""
