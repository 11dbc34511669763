"""`make chaos`: a randomized, seeded fault soak of the whole system, with invariants.

`python -m testbed.chaos --minutes 5 --seed 17` runs it: see docs/reliability.md.
"""
