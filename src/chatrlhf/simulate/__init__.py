"""Simulated users, annotators and gold judge: the offline source of data and ground truth.

The embedded default has no human labelers, so this package plays every human role (in the spirit
of AlpacaFarm) and emits the same ``schema`` records humans do:

- ``generate_tasks`` / ``make_demos`` / ``ideal_reply``: prompts and demonstrations from ten task
  families (``FAMILIES``), built from the project's own knowledge base; train and eval splits are
  disjoint in templates and entities. ``general`` (everyday requests: write, explain, summarise,
  plan, code, how-to) has prompts and a gold scorer but no ideal reply (``NO_IDEAL_FAMILIES``:
  ``ideal_reply`` is None, no demos, no simulator rankings); its demonstrations are distilled from
  the base model elsewhere. ``general_prompt_count(split)`` says how many distinct prompts it has.
- ``judge``: the gold judge (``JudgeScore.total`` in [0, 1], ideal replies score 1.0), and the
  detectors the evaluation shares: ``is_refusal``, ``challenges_premise``, ``asks_clarification``,
  ``agrees_with_user``.
- ``Annotator``: K-wise rankings with Bradley-Terry noise, length and sycophancy biases;
  ``agreement_with_gold`` and ``inter_annotator_agreement`` measure them.
- ``SimulatedUser``: thumbs up/down with an optional flattery bias.
- ``SimulateConfig`` + ``run``: write ``demos.jsonl``, ``prompts.jsonl``, ``rankings.jsonl``.

``HARM_CATEGORIES`` are the moderation filter's category names.

Records. A prompt's ``meta`` is ``{"family", "split", "task"}``; ``task`` always has ``kind``,
``template``, ``entities``, ``ideal`` (None for general) and ``slots``, and by family: ``answer``/``accept`` (verifiable,
followup, correction, pushback, false_premise: the correcting fact), ``false_claim`` (false_premise),
``category``/``alt_words`` (harmful), ``keywords`` (sounds_harmful, ambiguous, general), ``topic`` and
``min_words`` (general), ``aspect`` (identity),
``wrong`` (correction: the earlier wrong answer; pushback: the user's wrong claim). Demonstrations
add ``source="simulate"`` and ``loss_on`` (``"last_turn"`` for correction dialogs, whose earlier
assistant turn is the deliberate mistake, else ``"all"``). Rankings from ``run`` carry the prompt's
meta plus ``strategies`` (which simulator strategy wrote each completion).
"""

from chatrlhf.simulate.adversarial import ADVERSARIAL, CANDIDATES
from chatrlhf.simulate.annotators import (
    Annotator, AnnotatorConfig, SimulatedUser, UserConfig, agreement_with_gold, inter_annotator_agreement,
)
from chatrlhf.simulate.export import SimulateConfig, make_rankings, run
from chatrlhf.simulate.families import FAMILIES, NO_IDEAL_FAMILIES, SPLITS
from chatrlhf.simulate.general import general_prompt_count
from chatrlhf.simulate.judge import (
    CRITERIA, JudgeScore, agrees_with_user, asks_clarification, challenges_premise, complies, flatters,
    gives_harmful_help, is_refusal, judge, says_ai,
)
from chatrlhf.simulate.tasks import generate_tasks, ideal_replies, ideal_reply, instruction_records, make_demos
from chatrlhf.simulate.templates import HARM_CATEGORIES

__all__ = [
    "ADVERSARIAL", "CANDIDATES", "CRITERIA", "FAMILIES", "HARM_CATEGORIES", "NO_IDEAL_FAMILIES", "SPLITS",
    "Annotator", "AnnotatorConfig", "JudgeScore", "SimulateConfig", "SimulatedUser", "UserConfig",
    "agreement_with_gold", "agrees_with_user", "asks_clarification", "challenges_premise", "complies",
    "flatters", "general_prompt_count", "generate_tasks", "gives_harmful_help", "ideal_replies", "ideal_reply", "instruction_records", "inter_annotator_agreement",
    "is_refusal", "judge", "make_demos", "make_rankings", "run", "says_ai",
]
