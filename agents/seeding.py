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


#: What `evaluation_seed` draws a stream for: each purpose its own streams.
EVALUATION_PURPOSES = ("training_evaluation", "validation")


def evaluation_seed(seed: int, purpose: str, env_steps: int) -> int:
    """The seed of the episodes a run of seed `seed` is scored on after `env_steps` steps, for
    `purpose` (the periodic evaluation, or early stopping's validation): every seed of a cell is
    scored on episodes of its own, so the spread over seeds is not narrowed by shared episodes,
    and a resumed run scores the episodes an uninterrupted one does."""
    if purpose not in EVALUATION_PURPOSES:
        raise ValueError(f"purpose={purpose!r} is invalid: expected one of {EVALUATION_PURPOSES}")
    code = EVALUATION_PURPOSES.index(purpose)
    return int(np.random.SeedSequence([int(seed), code, int(env_steps)]).generate_state(1)[0])
