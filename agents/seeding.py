"""Independent random streams from one seed.

Two torch generators seeded with the same number produce the same numbers: an environment and an
action sampler seeded alike would draw correlated randomness (the uniforms that place objects
would be the ones that choose actions). Every consumer gets its own stream instead.
"""

from __future__ import annotations

import numpy as np


def independent_seeds(seed: int, count: int) -> list[int]:
    """`count` seeds for independent streams, derived from `seed` by numpy's SeedSequence."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(count)]
