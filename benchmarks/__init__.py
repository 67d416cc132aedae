"""The benchmark (`make bench`, `python -m benchmarks`): the pipeline beside a textbook
baseline, a Quix Streams peer, Faust's floor and the raw client.

In one run on the embedded broker and Redis: a pre-produced backlog (`benchmarks.backlog`),
a burst into running contenders and a paced live load (`benchmarks.running`), judged
against the performance issue's targets (`benchmarks.targets`); `benchmarks.command` has
the flags and the table, `benchmarks.harness` starts the stack and the contenders.
"""
