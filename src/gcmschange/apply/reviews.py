"""Post-implementation reviews owed by emergency changes (`.gcmschange/reviews.json`).

An emergency change may pass the gate on fewer approvals; in return, a review is owed
within the policy's `emergency.review_due_days`. The gate records the debt when it lets an
emergency change through; a change-board member pays it with
`gcmschange approve CHANGE --role review`; `gcmschange approvals` reports it overdue.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

from gcmschange.approvals.statements import REVIEW_ROLE, VALID, Verdict, parse_time, utc_text
from gcmschange.errors import InvalidInputError
from gcmschange.paths import state_dir


@dataclass(frozen=True)
class Review:
    change: str
    owed_since: str  # ISO 8601, UTC
    due: str  # ISO 8601, UTC


@dataclass(frozen=True)
class ReviewStatus:
    change: str
    due: str
    done_by: str | None
    overdue: bool


def reviews_file(root: Path) -> Path:
    return state_dir(root) / "reviews.json"


def owed_reviews(root: Path) -> dict[str, Review]:
    path = reviews_file(root)
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return {key: Review(**value) for key, value in doc.items()}
    except (ValueError, TypeError, AttributeError) as exc:
        raise InvalidInputError(f"{path}: not a reviews file: {exc}") from exc


def owe_review(root: Path, change: str, now: datetime, days: int) -> Review:
    """Record that `change` owes a review; the first due date recorded stands."""
    reviews = owed_reviews(root)
    if change not in reviews:
        reviews[change] = Review(change, utc_text(now), utc_text(now + timedelta(days=days)))
        path = reviews_file(root)
        tmp = path.with_name(path.name + ".tmp")
        body = {key: asdict(value) for key, value in sorted(reviews.items())}
        tmp.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)  # atomic: a crash leaves the old file or the new one
    return reviews[change]


def review_status(review: Review, verdicts: Iterable[Verdict], now: datetime) -> ReviewStatus:
    done_by = next(
        (v.principal for v in verdicts if v.status == VALID and REVIEW_ROLE in v.roles), None
    )
    overdue = done_by is None and parse_time(review.due) < now
    return ReviewStatus(review.change, review.due, done_by, overdue)
