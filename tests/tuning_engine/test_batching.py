from include.tuning_engine.batching import collate, length_grouped_batches
from include.tuning_engine.rendering import IGNORE_INDEX, TokenizedExample


def test_batches_group_similar_lengths_and_cover_every_example_once():
    lengths = [(i * 37) % 101 + 1 for i in range(200)]
    batches = length_grouped_batches(lengths, 8, seed=0, epoch=0)
    assert sorted(i for batch in batches for i in batch) == list(range(200))
    padding = sum(max(lengths[i] for i in batch) * len(batch) - sum(lengths[i] for i in batch) for batch in batches)
    assert padding < 0.05 * sum(lengths)


def test_order_depends_on_seed_and_epoch_only():
    lengths = list(range(1, 65))
    assert length_grouped_batches(lengths, 4, seed=1, epoch=2) == length_grouped_batches(lengths, 4, seed=1, epoch=2)
    assert length_grouped_batches(lengths, 4, seed=1, epoch=2) != length_grouped_batches(lengths, 4, seed=1, epoch=3)


def test_collate_pads_right_and_masks_padding_labels():
    examples = [
        TokenizedExample([5, 6, 7], [IGNORE_INDEX, 6, 7], False, 2, 3),
        TokenizedExample([5, 8], [IGNORE_INDEX, 8], False, 2, 2),
    ]
    batch = collate(examples, pad_id=7, device="cpu")
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 8, 7]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    # the first row's label 7 equals the pad id and is kept; the second row's padding is not learned
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 6, 7], [IGNORE_INDEX, 8, IGNORE_INDEX]]
