import json

import pytest

from include.tuning_engine.dataset import data_stats, distribution, load_examples
from include.tuning_engine.spec import DatasetError
from tests.tuning_engine.helpers import contents_example, write_jsonl


def test_both_formats_load_to_the_same_tokens(tiny_tokenizer, tmp_path):
    current = write_jsonl(tmp_path / "current.jsonl", [contents_example("Q", "A", system="S")])
    legacy = write_jsonl(
        tmp_path / "legacy.jsonl",
        [{"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}, {"role": "model", "content": "A"}]}],
    )
    assert load_examples(current, tiny_tokenizer, 512) == load_examples(legacy, tiny_tokenizer, 512)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"contents": [{"role": "user", "parts": [{"text": "only a question"}]}]}), "no 'model' turn"),
        (json.dumps({"contents": [{"role": "robot", "parts": [{"text": "x"}]}]}), "contents[0].role"),
    ],
)
def test_bad_lines_raise_dataset_error_with_file_and_line(tiny_tokenizer, tmp_path, line, message):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(contents_example("Q", "A")) + "\n\n" + line + "\n")
    with pytest.raises(DatasetError) as raised:
        load_examples(path, tiny_tokenizer, 512)
    assert raised.value.line == 3 and raised.value.path == path
    assert message in str(raised.value) and f"{path}, line 3" in str(raised.value)


def test_empty_file_is_an_error(tiny_tokenizer, tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    with pytest.raises(DatasetError, match="no examples"):
        load_examples(path, tiny_tokenizer, 512)


def test_data_stats_count_truncation_tokens_and_steps(tiny_tokenizer, tmp_path):
    records = [contents_example("short", "yes"), contents_example("long " * 100, "no"), contents_example("mid", "ok")]
    examples = load_examples(write_jsonl(tmp_path / "d.jsonl", records), tiny_tokenizer, 40)
    stats = data_stats(examples, epoch_count=3, batch_size=2)

    assert stats["tuningDatasetExampleCount"] == 3
    assert stats["totalTruncatedExampleCount"] == 1
    assert stats["truncatedExampleIndices"] == [2]  # Vertex counts examples from 1
    assert stats["tuningStepCount"] == 3 * 2
    assert stats["totalBillableTokenCount"] == sum(len(e.input_ids) for e in examples)
    assert stats["totalTuningCharacterCount"] == sum(len(q) + len(a) for q, a in [("short", "yes"), ("long " * 100, "no"), ("mid", "ok")])
    assert stats["userOutputTokenDistribution"]["sum"] == sum(e.output_token_count for e in examples)
    assert stats["userMessagePerExampleDistribution"]["max"] == 2.0


def test_distribution_fields():
    shape = distribution([1, 2, 3, 4, 100])
    assert (shape["sum"], shape["min"], shape["max"], shape["median"], shape["mean"]) == (110, 1.0, 100.0, 3.0, 22.0)
    assert shape["p5"] == pytest.approx(1.2) and shape["p95"] == pytest.approx(80.8)
    assert sum(bucket["count"] for bucket in shape["buckets"]) == 5
    assert shape["buckets"][0]["left"] == 1 and shape["buckets"][-1]["right"] == pytest.approx(100)
    assert distribution([7, 7])["buckets"] == [{"count": 2, "left": 7, "right": 8}]
