"""Model builds are tasks: run by a worker, one line when they fail, and older status-file builds imported."""

from __future__ import annotations

import json

import pytest

# A build small enough for a test (the real one trains on 8,000 rows for minutes).
from core.work import builds, tasks

# A build small enough for a test (the real one trains on 8,000 rows for minutes).
SMALL = ["--train-rows", "24", "--heldout-rows", "12", "--checkpoints", "1"]


def test_a_bad_row_ends_the_build_with_one_line_and_no_model(engine, home):
    started = builds.submit_build(engine, "text,gold\nThe lift was broken,furious\n", "a hand-made file", options=SMALL)
    assert started.extra_rows == 1 and started.running and started.status == "queued"
    ended = builds.Build.from_task(tasks.run_here(engine, None, started.id))
    assert ended.status == "failed" and "furious" in ended.error
    assert "\n" not in ended.error and "Traceback" not in ended.error
    assert not ended.finished and not (home / "models").exists()
    assert [b.id for b in builds.list_builds(engine)] == [started.id]


def test_options_that_build_default_refuses_are_refused_at_submission(engine):
    with pytest.raises(tasks.TaskError, match="--train-rows") as error:
        builds.submit_build(engine, options=["--train-rows", "many"])
    assert "\n" not in str(error.value)
    assert tasks.list_tasks(engine) == []


@pytest.mark.slow
def test_a_build_task_makes_a_new_version_with_the_extra_rows(engine, home):
    extra = "text,gold\nThe crew were wonderful,positive\nLost my bag again,negative\n"
    submitted = builds.submit_build(engine, extra, "evaluation 1, group 1", options=SMALL)
    assert builds.submit_build(engine, extra, "evaluation 1, group 1", options=SMALL).id == submitted.id  # one live build
    done = tasks.run_here(engine, None, submitted.id)
    assert done.status == "done", done.error
    built = builds.Build.from_task(done)
    assert built.finished and built.fraction == 1.0 and built.extra_rows == 2
    assert built.output_dir.endswith("default-sentiment-v2") and (home / "models" / "default-sentiment-v2" / "config.json").exists()
    rows = [json.loads(line) for line in (home / "models" / "default-sentiment-v2" / "training.jsonl").read_text().split("\n") if line]
    assert [r["id"] for r in rows if r["id"].startswith("extra-")] == ["extra-1", "extra-2"]
    card = json.loads((home / "models" / "default-sentiment-v2" / "rashomon.json").read_text())
    assert (built.accuracy, built.macro_f1) == (card["accuracy"], card["macro_f1"])
    assert done.seconds > 0 and done.forward_passes == 0  # no model was loaded for it: a build makes one


def test_status_file_builds_become_ended_build_tasks_once(engine, home):
    """Builds from before builds were tasks: each status.json is imported once as an ended build task."""
    folder = home / "builds"
    for name, status in (("20261101-101010", {"source": "evaluation 2, group 1", "extra_rows": 40, "finished": True,
                                             "output_dir": "/m/default-sentiment-v2", "accuracy": 0.8, "macro_f1": 0.7,
                                             "fraction": 1.0}),
                         ("20261102-101010", {"source": "evaluation 3, group 2", "extra_rows": 5, "fraction": 0.4,
                                             "finished": False})):
        (folder / name).mkdir(parents=True)
        (folder / name / "status.json").write_text(json.dumps(status))
    listed = builds.list_builds(engine)
    assert [(b.source, b.extra_rows, b.status) for b in listed] == [("evaluation 3, group 2", 5, "failed"),
                                                                     ("evaluation 2, group 1", 40, "done")]
    assert (listed[1].output_dir, listed[1].accuracy, listed[1].macro_f1) == ("/m/default-sentiment-v2", 0.8, 0.7)
    assert "before builds were tasks" in listed[0].error
    assert builds.import_status_files(engine) == 0 and len(builds.list_builds(engine)) == 2  # once only
    assert len(tasks.list_tasks(engine, kind="model_build")) == 2


def test_a_build_taken_over_after_its_worker_died_says_it_restarted(engine):
    from sqlalchemy import update

    from core.storage.schema import TaskRecord, utcnow

    submitted = builds.submit_build(engine, options=SMALL)
    with engine.begin() as connection:  # as a killed worker leaves it, then taken over by another
        connection.execute(update(TaskRecord).where(TaskRecord.id == submitted.id).values(
            status="running", owner="elsewhere:1:x", heartbeat_at=utcnow(), attempts=2))
    shown = builds.list_builds(engine)[0]
    assert shown.running and "Restarted from the beginning (attempt 2" in shown.message


def test_length_grouped_batches_cover_every_row_once_with_less_padding():
    import torch

    from core.engine.default_model import BuildConfig, training_batches

    lengths = [5 + (i * 37) % 60 for i in range(1000)]
    plain = training_batches(lengths, BuildConfig(batch_size=32), torch.Generator().manual_seed(13))
    reference = torch.randperm(1000, generator=torch.Generator().manual_seed(13)).tolist()
    assert [i for b in plain for i in b] == reference  # off: exactly the order builds used before
    grouped = training_batches(lengths, BuildConfig(batch_size=32, group_by_length=True),
                               torch.Generator().manual_seed(13))
    assert sorted(i for b in grouped for i in b) == list(range(1000))  # every row once
    assert grouped == training_batches(lengths, BuildConfig(batch_size=32, group_by_length=True),
                                       torch.Generator().manual_seed(13))  # seeded

    def padding(batches):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)

    assert padding(grouped) < padding(plain) / 4
