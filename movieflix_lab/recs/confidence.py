"""From viewings to ALS confidences: what a finished viewing says about a user's taste.

implicit's ALS reads a users x items matrix whose non-zero entries are *confidences*: a
positive value means "the user likes the item" with that confidence; a negative value
means "the user does not like it" with confidence ``|value|``; the entries left out are
"no preference" with confidence 1.

A viewing's *strength* ``w`` combines what watch-history and ratings say::

    w = completion + rewatch_bonus · min(views - 1, max_rewatches) + rating_weight · (rating - 3)

* **completion** (the largest share of the movie watched over its viewings) is the main
  signal: people finish what they like and abandon what they do not. A movie abandoned in
  its first quarter is evidence *against* it, not a weak like.
* **rewatches** are the strongest implicit signal there is, capped so a child's favourite
  film watched fifty times does not dominate the row. The compacted topic keeps only the
  latest viewing per user and movie, so rewatches count where the viewings were seen (the
  stream app, a fresh topic); a refit from a long-compacted topic sees one view each.
* **ratings** (when there are any: MovieLens, ``rate`` events) move the strength up or
  down around the neutral 3 stars.

Then ``value = 1 + alpha · w`` when ``w ≥ abandon_below`` (a like, more confident the
stronger), else ``-(1 + alpha · (abandon_below - w))`` (a dislike, more confident the
earlier it was abandoned). Every viewed movie is thus in the user's row, so "already
watched" filtering needs nothing else. ``alpha`` is tuned on a validation split with the
ALS hyper-parameters (Hu, Koren & Volinsky 2008 use ``1 + alpha · r`` the same way).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Confidence"]

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Confidence:
    alpha: float = 4.0
    rewatch_bonus: float = 0.5
    max_rewatches: int = 3
    rating_weight: float = 0.5
    abandon_below: float = 0.25

    def strength(self, completion: Any, views: Any = 1, rating: Any = np.nan) -> Floats:
        """``w`` for each viewing (arrays or scalars; a missing rating is NaN)."""
        completion = np.asarray(completion, dtype=np.float64)
        rewatches = np.clip(np.asarray(views, dtype=np.float64) - 1, 0, self.max_rewatches)
        rating = np.asarray(rating, dtype=np.float64)
        bonus = np.where(np.isnan(rating), 0.0, self.rating_weight * (rating - 3.0))
        return completion + self.rewatch_bonus * rewatches + bonus

    def value(self, strength: Any) -> Floats:
        """The matrix entry for each strength: positive (a like) or negative (a dislike)."""
        w = np.asarray(strength, dtype=np.float64)
        return np.where(
            w >= self.abandon_below,
            1.0 + self.alpha * w,
            -(1.0 + self.alpha * (self.abandon_below - w)),
        )

    def values(self, completion: Any, views: Any = 1, rating: Any = np.nan) -> Floats:
        return self.value(self.strength(completion, views, rating))

    def liked(self, strength: Any) -> npt.NDArray[np.bool_]:
        """Which viewings count as a like (a hit when held out for evaluation)."""
        return np.asarray(strength, dtype=np.float64) >= self.abandon_below

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
