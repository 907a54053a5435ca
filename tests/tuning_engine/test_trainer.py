"""Real LoRA training of the tiny model on a toy task (a few seconds per run)."""

import logging
from dataclasses import replace
from pathlib import Path

import pytest

from include.tuning_engine.dataset import load_examples
from include.tuning_engine.generation import Generator
from include.tuning_engine.runtime import load_tokenizer
from include.tuning_engine.spec import DatasetError, TrainingSpec
from include.tuning_engine.trainer import train, with_lora
from tests.tuning_engine.helpers import TOY_PAIRS, RecordingReporter

TRAIN_METRICS = {"/train_total_loss", "/train_fraction_of_correct_next_step_preds", "/train_num_predictions"}
EVAL_METRICS = {"/eval_total_loss", "/eval_fraction_of_correct_next_step_preds", "/eval_num_predictions"}
EPOCHS = 6  # 48 examples, batch 8: 36 steps


def toy_spec(tiny_model, toy_data, output_dir: Path, **changes) -> TrainingSpec:
    train_path, validation_path = toy_data
    spec = TrainingSpec(
        base_model=tiny_model,
        training_data=train_path,
        validation_data=validation_path,
        output_dir=output_dir,
        epoch_count=EPOCHS,
        adapter_size=8,
        learning_rate_multiplier=10.0,
        seed=0,
        batch_size=8,
    )
    return replace(spec, **changes)


@pytest.fixture(scope="module")
def toy_run(tiny_model, toy_data, tmp_path_factory):
    reporter = RecordingReporter()
    spec = toy_spec(tiny_model, toy_data, tmp_path_factory.mktemp("toy-run"))
    return spec, train(spec, reporter), reporter


@pytest.mark.slow
def test_loss_falls_and_the_tuned_model_answers(toy_run):
    spec, result, reporter = toy_run
    losses = reporter.series("/train_total_loss")
    assert not result.stopped and result.steps == EPOCHS * 6 and result.epochs_completed == EPOCHS
    assert sum(losses[-6:]) / 6 < 0.2 * sum(losses[:6]) / 6
    assert reporter.series("/eval_fraction_of_correct_next_step_preds")[-1] == 1.0

    generator = Generator()
    for question, answer in TOY_PAIRS:
        request = {"contents": [{"role": "user", "parts": [{"text": question}]}], "generationConfig": {"temperature": 0}}
        response = generator.generate(spec.base_model, result.adapter_dir, request)
        assert response["candidates"][0]["content"]["parts"][0]["text"] == answer
        assert response["candidates"][0]["finishReason"] == "STOP"  # it learned to end its turn


@pytest.mark.slow
def test_metrics_names_counts_and_progress(toy_run):
    spec, result, reporter = toy_run
    train_points = [(step, values) for step, values in reporter.metrics_log if set(values) == TRAIN_METRICS]
    eval_points = [(step, values) for step, values in reporter.metrics_log if set(values) == EVAL_METRICS]
    assert len(train_points) + len(eval_points) == len(reporter.metrics_log)
    assert [step for step, _ in train_points] == list(range(1, result.steps + 1))
    assert [step for step, _ in eval_points] == [6 * epoch for epoch in range(1, EPOCHS + 1)]  # every epoch, the last at the end
    # each epoch predicts every answer token of the training set once; each evaluation, the validation set's
    answer_tokens = reporter.stats["userOutputTokenDistribution"]["sum"]
    for epoch in range(EPOCHS):
        assert sum(values["/train_num_predictions"] for _, values in train_points[6 * epoch : 6 * epoch + 6]) == answer_tokens
    validation = load_examples(spec.validation_data, load_tokenizer(spec.base_model), spec.max_example_tokens)
    assert {values["/eval_num_predictions"] for _, values in eval_points} == {sum(e.output_token_count for e in validation)}
    assert all(0 <= values["/train_fraction_of_correct_next_step_preds"] <= 1 for _, values in train_points)
    assert reporter.progress_log[-1] == (result.steps, result.steps, EPOCHS)
    assert reporter.stats["tuningDatasetExampleCount"] == 48 and reporter.stats["tuningStepCount"] == result.steps
    assert (result.adapter_dir / "adapter_config.json").exists()
    assert len(list((spec.output_dir / "checkpoints").glob("epoch-*.pt"))) == EPOCHS


@pytest.mark.slow
def test_should_stop_ends_the_run_at_the_next_step(tiny_model, toy_data, tmp_path):
    reporter = RecordingReporter(stop_after_step=3)
    result = train(toy_spec(tiny_model, toy_data, tmp_path), reporter)
    assert result.stopped and result.steps == 3
    assert len(reporter.progress_log) == 3
    assert not result.adapter_dir.exists()


@pytest.mark.slow
def test_resume_from_checkpoint_gives_the_uninterrupted_curve(tiny_model, toy_data, tmp_path, toy_run):
    _, _, uninterrupted = toy_run
    spec = toy_spec(tiny_model, toy_data, tmp_path)
    stopped = train(spec, RecordingReporter(stop_after_step=6 * 2 + 1))  # stops one step into epoch 3
    assert stopped.stopped and stopped.epochs_completed == 2

    resumed_reporter = RecordingReporter()
    resumed = train(spec, resumed_reporter)
    assert not resumed.stopped and resumed.steps == EPOCHS * 6
    assert resumed_reporter.progress_log[0][0] == 6 * 2 + 1  # continued from the epoch-2 checkpoint
    expected = uninterrupted.series("/train_total_loss")[6 * 2 :]
    assert resumed_reporter.series("/train_total_loss") == pytest.approx(expected, rel=1e-4)


@pytest.mark.slow
def test_same_seed_same_curve_other_seed_other_curve(tiny_model, toy_data, tmp_path):
    curves = {}
    for name, seed in (("first", 0), ("again", 0), ("other", 1)):
        reporter = RecordingReporter()
        train(toy_spec(tiny_model, toy_data, tmp_path / name, epoch_count=2, seed=seed), reporter)
        curves[name] = reporter.series("/train_total_loss")
    assert curves["first"] == curves["again"]
    assert curves["first"] != curves["other"]


def test_bad_training_data_raises_dataset_error_before_training(tiny_model, toy_data, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"contents": [{"role": "user", "parts": [{"text": "q"}]}]}\n')
    reporter = RecordingReporter()
    with pytest.raises(DatasetError, match="line 1"):
        train(toy_spec(tiny_model, toy_data, tmp_path / "out", training_data=bad), reporter)
    assert reporter.progress_log == []


def test_running_a_shared_prefix_once_changes_nothing(tiny_model, tiny_tokenizer, monkeypatch):
    import torch

    from include.tuning_engine import trainer
    from include.tuning_engine.batching import collate
    from include.tuning_engine.conversation import chat_messages
    from include.tuning_engine.rendering import render_example
    from include.tuning_engine.runtime import load_model
    from tests.tuning_engine.helpers import contents_example

    system = "Sort the ticket into billing or shipping."
    examples = [
        render_example(tiny_tokenizer, chat_messages(contents_example(question, answer, system)), 256)
        for question, answer in [("my card was charged twice", "billing"), ("parcel late", "shipping"), ("refund?", "billing")]
    ]
    batch = collate(examples, tiny_tokenizer.pad_token_id, "cpu")
    assert trainer.shared_prefix_length(batch["input_ids"], batch["attention_mask"]) >= trainer.MIN_SHARED_PREFIX

    def loss_and_gradients():
        torch.manual_seed(0)
        model = trainer.with_lora(load_model(tiny_model), rank=4)
        for name, parameter in model.named_parameters():
            if "lora_B" in name:  # B starts at zero; make the adapters matter
                torch.nn.init.normal_(parameter, std=0.1)
        loss, correct, predictions = trainer.label_only_loss(model, batch)
        loss.backward()
        return loss.item(), correct, predictions, [p.grad.clone() for p in model.parameters() if p.requires_grad]

    shared = loss_and_gradients()
    monkeypatch.setattr(trainer, "MIN_SHARED_PREFIX", 10_000)
    separate = loss_and_gradients()
    assert shared[:3] == pytest.approx(separate[:3], rel=1e-5)
    for with_sharing, without in zip(shared[3], separate[3]):
        torch.testing.assert_close(with_sharing, without, rtol=1e-4, atol=1e-6)


def test_label_only_loss_equals_the_loss_over_full_logits(tiny_model, tiny_tokenizer):
    import torch
    import torch.nn.functional as F

    from include.tuning_engine import trainer
    from include.tuning_engine.batching import collate
    from include.tuning_engine.conversation import chat_messages
    from include.tuning_engine.rendering import render_example
    from include.tuning_engine.runtime import load_model
    from tests.tuning_engine.helpers import contents_example

    examples = [
        render_example(tiny_tokenizer, chat_messages(contents_example(question, answer)), 256)
        for question, answer in [("a longer question here", "yes"), ("short", "a longer answer")]
    ]
    batch = collate(examples, tiny_tokenizer.pad_token_id, "cpu")
    model = trainer.with_lora(load_model(tiny_model), rank=2)
    for parameter in model.parameters():  # LoRA B starts at zero: make every gradient non-trivial
        if parameter.requires_grad:
            torch.nn.init.normal_(parameter, std=0.1)

    def gradients(loss):
        model.zero_grad()
        loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}

    loss, correct, predictions = trainer.label_only_loss(model, batch)
    label_only_gradients = gradients(loss)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    targets = batch["labels"][:, 1:]
    expected = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)
    full_gradients = gradients(expected)
    where = targets != -100
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    for name, gradient in full_gradients.items():  # the same gradients, not only the same loss
        torch.testing.assert_close(label_only_gradients[name], gradient, rtol=1e-4, atol=1e-6)
    assert predictions == int(where.sum()) == sum(e.output_token_count for e in examples)
    assert correct == int((logits.argmax(-1)[where] == targets[where]).sum())


def test_long_examples_keep_their_answer_and_are_reported(tiny_model, toy_data, tmp_path):
    reporter = RecordingReporter()
    result = train(toy_spec(tiny_model, toy_data, tmp_path, epoch_count=1, max_example_tokens=4), reporter)
    assert reporter.stats["tuningDatasetExampleCount"] == 48
    assert reporter.stats["totalTruncatedExampleCount"] == 48
    assert reporter.stats["truncatedExampleIndices"][:3] == [1, 2, 3]
    assert not result.stopped and result.steps == 6
    # the context went, the answers stayed: every step still learns from labelled tokens
    assert all(count > 0 for count in reporter.series("/train_num_predictions"))
    assert all(loss > 0 for loss in reporter.series("/train_total_loss"))


@pytest.mark.slow
def test_a_checkpoint_within_an_epoch_resumes_mid_epoch_on_the_same_curve(tiny_model, toy_data, tmp_path, toy_run):
    _, _, uninterrupted = toy_run
    # One epoch-long run would lose everything on a restart without time-based checkpoints.
    spec = toy_spec(tiny_model, toy_data, tmp_path, checkpoint_interval_s=0.0)
    stopped = train(spec, RecordingReporter(stop_after_step=6 * 2 + 4))  # four batches into epoch 3
    assert stopped.stopped
    names = {path.name for path in (tmp_path / "checkpoints").glob("*.pt")}
    assert names == {"epoch-0001.pt", "epoch-0002.pt", "epoch-0002-batch-000004.pt"}  # older ones superseded

    resumed_reporter = RecordingReporter()
    resumed = train(spec, resumed_reporter)
    assert not resumed.stopped and resumed.steps == EPOCHS * 6
    assert resumed_reporter.progress_log[0][0] == 6 * 2 + 5
    expected = uninterrupted.series("/train_total_loss")[6 * 2 + 4 :]
    assert resumed_reporter.series("/train_total_loss") == pytest.approx(expected, rel=1e-4)


def test_a_non_finite_loss_fails_the_run_with_a_clear_message(tiny_model, toy_data, tmp_path):
    from include.tuning_engine.spec import TrainingDiverged

    reporter = RecordingReporter()
    spec = toy_spec(tiny_model, toy_data, tmp_path, epoch_count=1, learning_rate_multiplier=float("inf"))
    with pytest.raises(TrainingDiverged, match=r"training loss became nan at step 2 .*learningRateMultiplier"):
        train(spec, reporter)
    assert [step for step, _ in reporter.metrics_log] == [1]  # the NaN never reached the reporter


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    import pickle

    import torch

    from include.tuning_engine.checkpoints import load_latest_checkpoint

    class Payload:
        def __reduce__(self):
            return (print, ("a checkpoint ran code",))

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    torch.save({"fingerprint": "f", "epoch": 1, "extra": Payload()}, folder / "epoch-0001.pt")
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_latest_checkpoint(folder, "f")


def test_tokenizing_and_hashing_report_that_the_run_is_alive(tiny_model, tmp_path):
    from tests.tuning_engine.helpers import contents_example, write_jsonl

    big = write_jsonl(tmp_path / "big.jsonl", [contents_example(f"question {i}", "yes") for i in range(1024)])
    reporter = RecordingReporter(stop_after_step=0)
    train(TrainingSpec(base_model=tiny_model, training_data=big, validation_data=None, output_dir=tmp_path / "out",
                       epoch_count=1, adapter_size=2, learning_rate_multiplier=1.0), reporter)
    assert reporter.alive_calls >= 1024 // 256 + 1  # every 256 lines, and for each block hashed


@pytest.mark.slow
def test_servable_checkpoints_after_the_chosen_epochs_survive_a_resume(tiny_model, toy_data, tmp_path):
    """Each exported epoch leaves an adapter of its own (the last is the final adapter), reported
    with its step; a run stopped and resumed keeps the ones it made and makes the rest."""
    from safetensors.torch import load_file

    spec = toy_spec(tiny_model, toy_data, tmp_path, epoch_count=3, export_epochs=(1, 2, 3))
    first = RecordingReporter(stop_after_step=6 * 2 + 1)  # one step into epoch 3
    assert train(spec, first).stopped
    resumed = RecordingReporter()
    result = train(spec, resumed)
    reported = first.checkpoints + resumed.checkpoints
    assert [(epoch, step) for epoch, step, _ in reported] == [(1, 6), (2, 12), (3, 18)]
    assert [folder.name for _, _, folder in reported] == ["adapter-epoch-0001", "adapter-epoch-0002", "adapter"]
    assert reported[-1][2] == result.adapter_dir
    weights = [load_file(folder / "adapter_model.safetensors") for _, _, folder in reported]
    for earlier, later in zip(weights, weights[1:]):
        assert any(not earlier[name].equal(later[name]) for name in earlier)  # three different adapters
    # An adapter, not a copy of the model: a small fraction of the base model's weights.
    base_bytes = sum(path.stat().st_size for path in Path(tiny_model).glob("*.safetensors"))
    assert all((folder / "adapter_model.safetensors").stat().st_size < base_bytes / 4 for _, _, folder in reported)


def test_the_log_says_where_the_time_went(tiny_model, toy_data, tmp_path, caplog):
    import re

    with caplog.at_level(logging.INFO, logger="include.tuning_engine.trainer"):
        train(toy_spec(tiny_model, toy_data, tmp_path, epoch_count=1), RecordingReporter())
    line = next(record.getMessage() for record in caplog.records if record.getMessage().startswith("time spent: "))
    phases = dict((name, float(seconds)) for name, seconds in re.findall(r"([a-z][a-z ]*?) ([\d.]+) s", line[12:]))
    assert list(phases) == ["tokenizing", "model loading", "training steps", "evaluation", "other"]
    assert phases["training steps"] > 0 and min(phases.values()) >= 0


def test_evaluation_in_large_batches_gives_the_metrics_of_small_ones(tiny_model, tiny_tokenizer, toy_data):
    from include.tuning_engine.runtime import load_model
    from include.tuning_engine.trainer import EVAL_BATCH_SIZE, evaluate

    examples = load_examples(toy_data[0], tiny_tokenizer, 2048)
    assert len(examples) > EVAL_BATCH_SIZE  # more than one large batch
    model = with_lora(load_model(tiny_model), rank=8)
    small = evaluate(model, examples, tiny_tokenizer.pad_token_id, 2, RecordingReporter())
    large = evaluate(model, examples, tiny_tokenizer.pad_token_id, 8, RecordingReporter())
    assert small["/eval_num_predictions"] == large["/eval_num_predictions"]
    assert small["/eval_fraction_of_correct_next_step_preds"] == large["/eval_fraction_of_correct_next_step_preds"]
    assert large["/eval_total_loss"] == pytest.approx(small["/eval_total_loss"], rel=1e-2)


def test_frozen_weights_in_bf16_give_what_autocast_gives(tiny_model, tiny_tokenizer):
    import torch

    from include.tuning_engine.batching import collate
    from include.tuning_engine.conversation import chat_messages
    from include.tuning_engine.rendering import render_example
    from include.tuning_engine.runtime import Runtime, load_model, store_frozen_weights_in_bf16
    from include.tuning_engine.trainer import label_only_loss
    from tests.tuning_engine.helpers import contents_example

    examples = [render_example(tiny_tokenizer, chat_messages(contents_example(q, a)), 256) for q, a in TOY_PAIRS]
    batch = collate(examples, tiny_tokenizer.pad_token_id, "cpu")
    results = []
    for stored_in_bf16 in (False, True):
        torch.manual_seed(0)
        model = with_lora(load_model(tiny_model), rank=8)
        if stored_in_bf16:
            store_frozen_weights_in_bf16(model)
        with Runtime("cpu", 1, bf16=True).autocast():
            loss, _, _ = label_only_loss(model, batch)
        loss.backward()
        grads = {name: p.grad for name, p in model.named_parameters() if p.requires_grad}
        results.append((loss.item(), grads, model))
    (loss32, grads32, model32), (loss16, grads16, model16) = results
    assert model16.get_base_model().model.layers[0].mlp.down_proj.weight.dtype == torch.bfloat16
    assert model16.get_output_embeddings().weight.dtype == torch.bfloat16  # its own copy...
    assert model16.get_input_embeddings().weight.dtype == torch.float32  # ...the embeddings keep theirs
    assert all(p.dtype == torch.float32 for p in model16.parameters() if p.requires_grad)  # LoRA stays fp32
    assert loss16 == pytest.approx(loss32, rel=1e-6)
    for name, grad in grads32.items():
        torch.testing.assert_close(grads16[name], grad, rtol=1e-4, atol=1e-6)



def test_with_a_larger_thread_budget_the_steps_time_each_count_and_the_log_says_so(
        tiny_model, toy_data, tmp_path, caplog, monkeypatch):
    import re

    import torch

    from include.tuning_engine import trainer
    from include.tuning_engine.runtime import runtime

    monkeypatch.setattr(trainer, "runtime", lambda: replace(runtime(), threads=1, max_threads=2))
    before = torch.get_num_threads()
    try:
        with caplog.at_level(logging.INFO, logger="include.tuning_engine.trainer"):
            train(toy_spec(tiny_model, toy_data, tmp_path, epoch_count=2), RecordingReporter())
    finally:
        torch.set_num_threads(before)
    messages = [record.getMessage() for record in caplog.records]
    step_counts = [int(m.rsplit("threads ", 1)[1]) for m in messages if m.startswith("step ")]
    assert step_counts[:3] == [1, 1, 2] and set(step_counts) == {1, 2}
    summary = next(m for m in messages if m.startswith("threads: "))
    ran = dict((int(count), int(steps)) for count, steps in re.findall(r"(\d) threads?: (\d+) steps", summary))
    assert ran == {1: step_counts.count(1), 2: step_counts.count(2)}
