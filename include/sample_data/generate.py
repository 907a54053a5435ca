"""Generate the sample tuning datasets from templates.

The main job tunes on these files, so they must teach something real: a support-ticket router
with five labels whose tickets are written from many templates, product names, amounts and
phrasings, so that a model cannot pass the held-out set by memorising lines. Summarization and
chat samples are smaller on purpose: they fall short of the recommended example counts and
exercise the pipeline's "not enough data" branch.

    python -m include.sample_data.generate [--out include/sample_data] [--seed 7]

Output is deterministic for a seed; the committed files are this script's output.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

LABELS = ("billing", "shipping", "technical", "account", "returns")

# Short on purpose: every token of every example costs training time on a CPU.
CLASSIFICATION_INSTRUCTION = "Route the ticket: billing, shipping, technical, account or returns."

PRODUCTS = (
    "wireless earbuds", "standing desk", "coffee grinder", "yoga mat", "smart thermostat",
    "hiking backpack", "phone case", "desk lamp", "air purifier", "blender", "office chair",
    "e-reader", "rain jacket", "water bottle", "robot vacuum", "mechanical keyboard",
    "baby monitor", "electric kettle", "camping tent", "gaming mouse", "router", "webcam",
)
CARRIERS = ("the courier", "the delivery driver", "the parcel service", "the post office")
DEVICES = ("my laptop", "my phone", "the tablet app", "the desktop app", "Chrome", "Safari")
OPENERS = ("", "Hi, ", "Hello, ", "Hey team, ", "Good morning, ", "Urgent: ", "Quick question: ")
CLOSERS = ("", " Thanks.", " Please help.", " Can you look into it?", " Thank you!",
           " This is frustrating.", " Any update would be appreciated.")

TEMPLATES: dict[str, tuple[str, ...]] = {
    "billing": (
        "I was charged twice for my {product} order, ${amount} each time.",
        "My invoice for order #{order} shows ${amount} but I paid less at checkout.",
        "Why did my card get billed ${amount} this month? I did not buy anything.",
        "The discount code was not applied and I paid full price for the {product}.",
        "I need a VAT invoice for order #{order}.",
        "My payment of ${amount} went through but the order still says unpaid.",
        "Please cancel the automatic renewal, I keep getting charged ${amount}.",
        "There is an unknown charge of ${amount} on my credit card statement from you.",
        "Can I switch my payment method from card to PayPal for order #{order}?",
        "You charged me sales tax twice on the {product}.",
        "The price dropped a day after I bought the {product}, can I get the difference of ${amount}?",
        "My bank says the refund of ${amount} was never sent back, the money is still gone.",
    ),
    "shipping": (
        "My {product} was supposed to arrive {days} days ago and it still has not shown up.",
        "The tracking number for order #{order} has not updated since {weekday}.",
        "{carrier} left my package at the wrong address.",
        "Can you ship the {product} to a different address? I moved last week.",
        "Order #{order} says delivered but there is nothing at my door.",
        "How long does express delivery take to reach my city?",
        "The box with my {product} arrived crushed and soaked by {carrier}.",
        "Do you ship to Canada? I want to order a {product}.",
        "My order #{order} has been stuck in customs for {days} days.",
        "Only half of my order arrived, the {product} is missing from the parcel.",
        "Can I pick up the {product} at a store instead of waiting for delivery?",
        "{carrier} says they tried to deliver on {weekday} but nobody knocked.",
    ),
    "technical": (
        "The {product} will not connect to wifi after the latest firmware update.",
        "Your app crashes on {device} every time I open the settings page.",
        "The {product} keeps turning itself off after {days} minutes.",
        "I get error code E{code} when I try to pair the {product}.",
        "The website checkout page is blank on {device}.",
        "Bluetooth on the {product} drops every few seconds.",
        "The {product} makes a loud buzzing noise when it starts.",
        "After resetting the {product}, the display stays black.",
        "The companion app on {device} does not find the {product} anymore.",
        "The battery of my {product} drains in {days} hours even when it is off.",
        "Login works but the dashboard never loads on {device}, it just spins.",
        "How do I update the firmware on the {product}? The update button is greyed out.",
    ),
    "account": (
        "I cannot log in, the password reset email never arrives.",
        "Please change the email address on my account to my new one.",
        "Someone else logged into my account from another country on {weekday}.",
        "How do I delete my account and all my data?",
        "My account got locked after {days} failed login attempts.",
        "I want to merge my two accounts, one of them has my order #{order}.",
        "The two-factor code is not accepted when I sign in on {device}.",
        "Please update the phone number on my profile.",
        "I never signed up but I receive your newsletter, remove my account.",
        "My loyalty points disappeared from my profile after I changed my name.",
        "Can I transfer my account to my business email?",
        "The sign-up form says my username is taken but I have no account.",
    ),
    "returns": (
        "I want to return the {product}, it is not what I expected.",
        "How do I send back the {product} from order #{order}?",
        "The {product} I received is the wrong colour, I would like to exchange it.",
        "I returned the {product} {days} days ago, when will I get my money back?",
        "Can I return a {product} that I already opened?",
        "Please send me a return label for order #{order}.",
        "The {product} is too big, I want to swap it for a smaller size.",
        "My return for the {product} was rejected, why?",
        "Is the return window 30 days for a {product} bought on sale?",
        "I would like to exchange the {product} for a different model.",
        "The store refused my return of the {product}, can I mail it instead?",
        "I dropped the {product} at the return point on {weekday}, please confirm you got it.",
    ),
}

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _ticket(rng: random.Random, template: str) -> str:
    body = template.format(
        product=rng.choice(PRODUCTS),
        amount=f"{rng.randint(5, 900)}.{rng.randint(0, 99):02d}",
        order=rng.randint(10000, 99999),
        days=rng.randint(2, 21),
        weekday=rng.choice(WEEKDAYS),
        carrier=rng.choice(CARRIERS),
        device=rng.choice(DEVICES),
        code=rng.randint(100, 999),
    )
    opener = rng.choice(OPENERS)
    if opener.endswith(", ") and not body.startswith(("I ", "I'")):
        body = body[0].lower() + body[1:]
    text = f"{opener}{body}{rng.choice(CLOSERS)}"
    return text[0].upper() + text[1:]


def _example(system: str | None, turns: list[tuple[str, str]]) -> dict:
    example: dict = {}
    if system:
        example["systemInstruction"] = {"role": "system", "parts": [{"text": system}]}
    example["contents"] = [{"role": role, "parts": [{"text": text}]} for role, text in turns]
    return example


def classification(rng: random.Random, count: int, seen: set[str]) -> list[dict]:
    """Balanced tickets, none repeated across the whole sample (`seen` spans the splits)."""
    rows = []
    while len(rows) < count:
        label = LABELS[len(rows) % len(LABELS)]
        ticket = _ticket(rng, rng.choice(TEMPLATES[label]))
        if ticket in seen:
            continue
        seen.add(ticket)
        rows.append(_example(CLASSIFICATION_INSTRUCTION, [("user", ticket), ("model", label)]))
    rng.shuffle(rows)
    return rows


SUMMARY_FACTS = (
    ("The {product} launch moved from {weekday} to next month", "the supplier missed {days} deadlines"),
    ("Sales of the {product} grew {days} percent", "a price cut and a new colour"),
    ("The warehouse switched to a new scanner system", "returns were processed {days} hours faster"),
    ("Customer complaints about the {product} doubled", "a faulty batch from one factory"),
)


def _unique(count: int, make, seen: set[str]) -> list[dict]:
    """`count` examples from `make()`, none equal to another in `seen` (which spans the splits)."""
    rows = []
    while len(rows) < count:
        row = make()
        key = json.dumps(row, sort_keys=True)
        if key not in seen:
            seen.add(key)
            rows.append(row)
    return rows


TEAMS = ("operations", "sales", "logistics", "support", "finance", "product")


def summarization(rng: random.Random, count: int, seen: set[str]) -> list[dict]:
    def make() -> dict:
        fact, cause = (part.format(product=rng.choice(PRODUCTS), weekday=rng.choice(WEEKDAYS),
                                   days=rng.randint(2, 40)) for part in rng.choice(SUMMARY_FACTS))
        report = (f"Team update. {fact}. According to the {rng.choice(TEAMS)} lead, the main reason was "
                  f"{cause}. The team will review the numbers again on {rng.choice(WEEKDAYS)}.")
        return _example("Summarize the update in one sentence.",
                        [("user", report), ("model", f"{fact} because of {cause}.")])

    return _unique(count, make, seen)


def chat(rng: random.Random, count: int, seen: set[str]) -> list[dict]:
    """Legacy `messages` format on purpose: the pipeline accepts both formats."""
    def make() -> dict:
        product = rng.choice(PRODUCTS)
        quantity = rng.randint(1, 4)
        return {"messages": [
            {"role": "system", "content": "You are a concise store assistant."},
            {"role": "user", "content": f"Do you have {quantity} of the {product} in stock?"},
            {"role": "model", "content": f"Yes, we have {quantity} {product} in stock. Would you like to order?"},
            {"role": "user", "content": f"How fast can it arrive on {rng.choice(WEEKDAYS)}?"},
            {"role": "model", "content": f"Standard delivery takes {rng.randint(2, 5)} business days."},
        ]}

    return _unique(count, make, seen)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def generate(out: Path, seed: int = 7) -> dict[str, int]:
    """Write every sample file under `out`; returns example counts by relative path."""
    rng = random.Random(seed)
    tickets: set[str] = set()
    summaries: set[str] = set()
    files = {
        "classification/train.jsonl": classification(rng, 520, tickets),
        "classification/validation.jsonl": classification(rng, 100, tickets),
        "classification/heldout.jsonl": classification(rng, 100, tickets),
        "summarization/train.jsonl": summarization(rng, 120, summaries),
        "summarization/validation.jsonl": summarization(rng, 20, summaries),
        "chat/train.jsonl": chat(rng, 80, set()),
    }
    for name, rows in files.items():
        write_jsonl(out / name, rows)
    return {name: len(rows) for name, rows in files.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    for name, count in generate(args.out, args.seed).items():
        print(f"{count:5d}  {args.out / name}")


if __name__ == "__main__":
    main()
