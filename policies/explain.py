"""Explanations: one plain sentence per contact, for the person and for whoever reads the CRM.

The sentence says what we know (the status, in words that never suggest the person is low or bad),
what the policy did about it (the evaluation's reason) and which policy version did it:

    "This person has chosen not to be scored; treated as the median (54) under policy
    support-queue v3."
"""

from __future__ import annotations

from policies.numbers import format_score
from policies.status import Status
from policies.strategies import Evaluation

__all__ = ["explain"]

_OPENINGS: dict[Status, str] = {
    Status.SCORED: "This person was scored by the provider",
    Status.OPTED_OUT: "This person has chosen not to be scored",
    Status.UNSCORED: ("The provider holds no score for this person, which says nothing about them"),
    Status.NOT_FOUND: (
        "This identity could not be found on the network, a data-quality matter for the record "
        "rather than anything about the person"
    ),
    Status.UNAVAILABLE: "No score could be fetched just now, a temporary problem on our side",
}


def explain(status: Status, evaluation: Evaluation, policy_name: str, version: int | str) -> str:
    """The one-sentence explanation of ``evaluation`` for a contact with ``status``.

    ``version`` is the policy version number (written ``v3``). For a scored contact the sentence
    names the score; for the others it names the treatment, e.g. the median used in its place.
    """
    if status is Status.SCORED and evaluation.effective_score is not None:
        treatment = f"the score of {format_score(evaluation.effective_score)} is used as given"
    else:
        treatment = evaluation.reason
    return f"{_OPENINGS[status]}; {treatment} under policy {policy_name} v{version}."
