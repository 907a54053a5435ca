"""A tiny Llama-style chat model built from a config in a second, for every area's tests.

It has the traits of SmolLM2 that matter to the engine: a byte-level BPE tokenizer (any text
encodes), a ChatML chat template, and `<|im_end|>` as both end-of-turn and padding token.
"""

from __future__ import annotations

import string
from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_CORPUS = [
    string.printable,
    "the quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG!",
    "system user assistant model you are a helpful assistant answer question label text",
    "positive negative neutral billing technical account shipping other yes no ok hello world",
    "classify the sentence translate summarize what is the capital of france paris rome berlin",
    "0 1 2 3 4 5 6 7 8 9 10 100 1000 one two three four five six seven eight nine ten",
    "àèéìòù ÄÖÜß ñ ç — “quotes” emoji 🙂 中文 日本語",
]


def build_tiny_model(dest: Path, *, vocab_size: int = 512, seed: int = 0) -> Path:
    """Write a randomly initialised tiny causal LM and its tokenizer to `dest`; return `dest`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        _CORPUS * 4,
        trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=SPECIAL_TOKENS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    if len(tokenizer) == 0:  # transformers 5 can build an empty tokenizer without complaint
        raise RuntimeError("the tiny tokenizer came out empty")

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=False,  # a tied random head keeps predicting its input token; LoRA struggles to undo that
        initializer_range=0.2,  # big enough embeddings that a LoRA-tuned tiny model can be confident
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest
