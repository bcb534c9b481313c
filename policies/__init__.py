"""The fairness policy engine: pure Python, no web framework, no database, no connectors.

A policy document (:class:`PolicyDocument`) turns a contact's status into an **effective score**, a
**segment** and a **rank**. What the service calls:

- documents: :class:`PolicyDocument` (validate with ``PolicyDocument.model_validate(data)``),
  :func:`default_policy`, :func:`diff_documents` for the changelog;
- the scored population of a provider: :class:`ScoredPopulation` (add / remove / replace scores
  as they change; median and percentiles for the strategies);
- per contact: :func:`evaluate` -> :class:`Evaluation`, :func:`explain` -> one sentence;
- rankings: :func:`rank` over :class:`RankItem` -> :class:`RankedItem`; the FA*IR tables
  :func:`mtable`, :func:`adjusted_alpha`, :func:`adjusted_mtable`, :func:`fail_probability`;
- before activation: :func:`find_demotions`, :func:`guard` -> :class:`GuardReport`,
  :func:`preview` -> :class:`PreviewReport`.

Every report is a pydantic model; ``model_dump(mode="json")`` gives the JSON the API returns.
"""

from policies.diff import ChangeKind, FieldChange, diff_documents
from policies.explain import explain
from policies.guard import (
    FOUR_FIFTHS,
    GroupFigures,
    GuardCheck,
    GuardContact,
    GuardReport,
    SegmentFigures,
    Violation,
    guard,
)
from policies.model import (
    ExcludeRule,
    FixedRule,
    MissingRule,
    MissingRules,
    NeutralRule,
    PercentileRule,
    PolicyDocument,
    RankingMethod,
    RankingSpec,
    Segment,
    Strategy,
    UseCase,
    default_policy,
)
from policies.population import ScoredPopulation
from policies.preview import PreviewContact, PreviewReport, RankMove, SegmentMove, preview
from policies.ranking import (
    ADJUSTMENT_CAP,
    RankedItem,
    RankItem,
    adjusted_alpha,
    adjusted_mtable,
    fail_probability,
    mtable,
    rank,
)
from policies.status import NON_SCORED, Status
from policies.strategies import Demotion, Evaluation, evaluate, find_demotions

__all__ = [
    "ADJUSTMENT_CAP",
    "FOUR_FIFTHS",
    "NON_SCORED",
    "ChangeKind",
    "Demotion",
    "Evaluation",
    "ExcludeRule",
    "FieldChange",
    "FixedRule",
    "GroupFigures",
    "GuardCheck",
    "GuardContact",
    "GuardReport",
    "MissingRule",
    "MissingRules",
    "NeutralRule",
    "PercentileRule",
    "PolicyDocument",
    "PreviewContact",
    "PreviewReport",
    "RankItem",
    "RankMove",
    "RankedItem",
    "RankingMethod",
    "RankingSpec",
    "ScoredPopulation",
    "Segment",
    "SegmentFigures",
    "SegmentMove",
    "Status",
    "Strategy",
    "UseCase",
    "Violation",
    "adjusted_alpha",
    "adjusted_mtable",
    "default_policy",
    "diff_documents",
    "evaluate",
    "explain",
    "fail_probability",
    "find_demotions",
    "guard",
    "mtable",
    "preview",
    "rank",
]
