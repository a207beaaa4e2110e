"""Corpus runs: many inputs, several methods, disagreement and faithfulness in aggregate.

- `inputs`: choosing the inputs (tagged snapshots, CSV rows);
- `jobs`: storing, running, stopping and resuming a job; `task`: a run as a `corpus_run` task;
- `aggregate`: agreement distributions, leaderboard, disputed inputs, cost, exports;
- `estimate`: passes and seconds a run will take, from the registry's cost models.
"""

from core.analyses.corpus.aggregate import (
    AgreementRow,
    AttackRow,
    CompletenessGap,
    CostRow,
    DisputedInput,
    EditAgreementRow,
    FragilityRow,
    LabelRow,
    LeaderboardRow,
    agreement_rows,
    attack_rows,
    bootstrap_interval,
    completeness_gaps,
    cost_rows,
    edit_agreement_rows,
    export_csv,
    export_json,
    fragility_rows,
    leaderboard,
    most_disputed,
    per_label,
)
from core.analyses.corpus.estimate import estimate_passes, estimate_seconds
from core.analyses.corpus.inputs import (
    CorpusError,
    Input,
    inputs_from_csv,
    inputs_from_snapshots,
    split_into_passages,
)
from core.analyses.corpus.jobs import (
    CORPUS_EDIT_OPTIONS,
    DEFAULT_FAITHFULNESS_INPUTS,
    create_job,
    faithfulness_positions,
    get_job,
    is_stale,
    item_result,
    items_of,
    list_jobs,
    request_stop,
    require_job,
    run_job,
    seconds_left,
)
from core.analyses.corpus.results import EditScores, FaithfulnessScores, Item, ItemResult, Job, PairAgreement

__all__ = [
    "CORPUS_EDIT_OPTIONS", "DEFAULT_FAITHFULNESS_INPUTS", "AgreementRow", "AttackRow", "EditAgreementRow",
    "EditScores", "FragilityRow", "attack_rows", "edit_agreement_rows", "fragility_rows", "CompletenessGap", "CorpusError", "CostRow", "DisputedInput",
    "FaithfulnessScores", "Input", "Item", "ItemResult", "Job", "LabelRow", "LeaderboardRow",
    "PairAgreement", "agreement_rows", "bootstrap_interval", "completeness_gaps", "cost_rows", "create_job",
    "estimate_passes", "estimate_seconds", "export_csv", "export_json", "faithfulness_positions", "get_job",
    "inputs_from_csv", "inputs_from_snapshots", "is_stale", "item_result", "items_of", "leaderboard", "list_jobs",
    "most_disputed", "per_label", "request_stop", "require_job", "run_job", "seconds_left", "split_into_passages",
]
