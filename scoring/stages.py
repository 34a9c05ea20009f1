"""The automatic stage rules (PRODUCT.md §2), as one plain function."""

from __future__ import annotations

from crm.models import Stage
from scoring.engine import Criteria

AUTOMATIC_FROM = (Stage.LEAD, Stage.MQL)


def automatic_move(
    *,
    stage: str,
    score: int,
    promotion_score: int,
    has_intent: bool,
    criteria: Criteria,
    hold_sql: bool = False,
    held: bool = False,
) -> tuple[Stage, str] | None:
    """Where scoring moves a contact now, with the reason; None to leave it.

    Promotions read ``promotion_score`` (for a recycled contact it counts only activity after the
    rejection; otherwise it equals the score). Nothing automatic moves a contact out of sql,
    opportunity, customer or disqualified. MQL → lead waits for the hysteresis margin, so a contact
    sitting on the threshold does not flap. ``hold_sql`` (imports) stops at MQL: the move to sql, which
    opens a queue entry and tells sales, waits for the contact's next rescore. ``held``: a marketer put the
    contact in lead or mql by hand, and scoring leaves it there (it still goes to sql when it qualifies).
    """
    if stage not in AUTOMATIC_FROM:
        return None
    if promotion_score >= criteria.sql_threshold and has_intent and not hold_sql:
        return Stage.SQL, (
            f"Score {promotion_score} ≥ SQL threshold {criteria.sql_threshold:g} and a sales-intent form "
            f"in the last {criteria.intent_days} days"
        )
    if held:
        return None
    if stage == Stage.LEAD and promotion_score >= criteria.mql_threshold:
        return Stage.MQL, f"Score {promotion_score} ≥ MQL threshold {criteria.mql_threshold:g}"
    if stage == Stage.MQL and score < criteria.mql_threshold - criteria.hysteresis:
        return Stage.LEAD, (
            f"Score {score} < MQL threshold {criteria.mql_threshold:g} − hysteresis {criteria.hysteresis:g}"
        )
    return None
