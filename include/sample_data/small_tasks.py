"""Small benchmark tasks: the 100-200 examples a user brings to a first try.

Unlike the shipped sample (five labels, 520 examples), these have more classes and fewer
examples per class, paraphrased instructions, and a short extraction task. Each task has a
training and a validation split (what a tuning job sees) and a held-out split that tuning and
every choice of settings never see. Held-out rows are unseen combinations of the same parts,
so that a model cannot pass by memorising lines.

    python -m include.sample_data.small_tasks --out /tmp/small-tasks [--seed 11]

Output is deterministic for a seed.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from include.sample_data.generate import WEEKDAYS, _example, write_jsonl

SPLITS = ("train", "validation", "heldout")

# --- intents10: a 10-intent assistant router, 12 examples per intent --------------------------

INTENT_INSTRUCTION = "Name the intent of the request."
CITIES = ("Lyon", "Oslo", "Porto", "Denver", "Osaka", "Dublin", "Austin", "Krakow", "Seville", "Leeds",
          "Turin", "Bergen", "Quebec", "Perth", "Ghent", "Malmo")
SONGS = ("jazz", "some rock", "the new Adele album", "lo-fi beats", "classical music", "my workout playlist",
         "podcasts", "90s hits")
DISHES = ("a pizza", "sushi", "two burgers", "pad thai", "a salad", "tacos", "ramen", "a curry")
TIMES = ("6 am", "7:30", "noon", "9 pm", "half past five", "8 tomorrow", "10:15")
AMOUNTS = ("20", "150", "75", "1,200", "40", "500", "3,000")
INTENTS: dict[str, tuple[str, ...]] = {
    "balance": ("How much money is left in my {account} account?", "What's my {account} balance?",
                "Show me the balance of my {account} account.", "Do I have enough in {account} to pay rent?"),
    "transfer": ("Send {amount} dollars from {account} to my savings.", "Move {amount} to my brother's account.",
                 "I need to wire {amount} to my landlord.", "Transfer {amount} between my accounts."),
    "lost_card": ("I lost my card somewhere in {city}.", "My debit card was stolen, block it please.",
                  "I can't find my credit card anywhere.", "Someone took my wallet with my card in {city}."),
    "flight": ("Book me a flight to {city} next {day}.", "Find cheap flights to {city}.",
               "I want to fly to {city} on {day}.", "Are there any direct flights to {city}?"),
    "weather": ("Will it rain in {city} on {day}?", "What's the forecast for {city}?",
                "Is it cold in {city} right now?", "Do I need an umbrella in {city} {day}?"),
    "alarm": ("Wake me up at {time}.", "Set an alarm for {time}.", "Put an alarm on {day} at {time}.",
              "I need to get up at {time}, set a reminder alarm."),
    "music": ("Play {song}.", "Put on {song} please.", "I'd like to listen to {song}.", "Start {song} in the kitchen."),
    "food": ("Order {dish} for dinner.", "Get me {dish} delivered.", "I want {dish} from the usual place.",
             "Can you order {dish} to my office?"),
    "password": ("I forgot my password.", "Reset my login password please.", "My password doesn't work anymore.",
                 "How do I change the password for my {account} account?"),
    "cancel": ("Cancel my trip to {city}.", "I need to cancel the booking for {day}.",
               "Please cancel my hotel in {city}.", "Call off my reservation for {day}."),
}
ACCOUNTS = ("checking", "savings", "joint", "business", "travel")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "weekend", "week")
POLITE = ("", "Hey, ", "Please, ", "Hi! ", "Quick one: ")


def _fill(rng: random.Random, template: str) -> str:
    return template.format(account=rng.choice(ACCOUNTS), amount=rng.choice(AMOUNTS), city=rng.choice(CITIES),
                           day=rng.choice(DAYS), time=rng.choice(TIMES), song=rng.choice(SONGS),
                           dish=rng.choice(DISHES))


def intents10(rng: random.Random) -> Callable[[int], dict]:
    labels = list(INTENTS)

    def make(index: int) -> dict:
        label = labels[index % len(labels)]
        text = rng.choice(POLITE) + _fill(rng, rng.choice(INTENTS[label]))
        return _example(INTENT_INSTRUCTION, [("user", text), ("model", label)])

    return make


# --- topics20: 20 news topics, 8 examples per topic, no label list in the prompt --------------

TOPICS: dict[str, tuple[str, ...]] = {
    "football": ("scores twice as {team} beat rivals", "coach sacked after {team} lose again"),
    "tennis": ("{place} player reaches the final after a five-set match", "seed {num} wins the open on clay"),
    "elections": ("polls open in {place} for a tight vote", "party leads early count in {place}"),
    "economy": ("inflation in {place} falls to {num} percent", "central bank holds rates at {num} percent"),
    "stocks": ("shares of {firm} jump {num} percent", "markets slide as {firm} misses forecasts"),
    "weather": ("storm brings floods to {place}", "heatwave sets records across {place}"),
    "space": ("rocket launches new satellite from {place}", "probe sends first images of moon number {num}"),
    "health": ("new vaccine approved in {place}", "hospitals in {place} report fewer flu cases"),
    "crime": ("police arrest {num} suspects in {place}", "bank robbery in {place} ends with arrests"),
    "movies": ("film by {firm} tops the box office", "director from {place} wins award for war drama"),
    "music": ("band announces tour with {num} dates", "singer tops the charts for {num} weeks"),
    "technology": ("{firm} unveils a new phone", "{firm} releases an update to its chips"),
    "cars": ("{firm} recalls {num} thousand cars", "electric car sales in {place} double"),
    "education": ("schools in {place} hire {num} new teachers", "university raises tuition by {num} percent"),
    "travel": ("airport in {place} adds new routes", "tourists return to {place} beaches"),
    "food": ("chef opens restaurant in {place}", "coffee prices rise by {num} percent"),
    "environment": ("{place} bans plastic bags", "forest fires cut air quality in {place}"),
    "science": ("researchers in {place} map a new gene", "lab in {place} builds a faster microscope"),
    "housing": ("house prices in {place} rise {num} percent", "rents in {place} hit a record"),
    "energy": ("oil prices climb {num} percent as supply falls", "{place} opens its largest wind farm"),
}
TOPIC_INSTRUCTION = "Give the topic of the headline in one word."
TEAMS = ("United", "City", "Rovers", "Athletic", "Wanderers")
PLACES = ("Spain", "Texas", "Kenya", "Ontario", "Bavaria", "Chile", "Vietnam", "Norway", "Ohio", "Peru")
FIRMS = ("Nexa", "Orbitel", "Kaito", "Veltra", "Brightwave", "Solano", "Mirex")
LEADS = ("", "Breaking: ", "Report: ", "Update: ")


def topics20(rng: random.Random) -> Callable[[int], dict]:
    labels = list(TOPICS)

    def make(index: int) -> dict:
        label = labels[index % len(labels)]
        body = rng.choice(TOPICS[label]).format(team=rng.choice(TEAMS), place=rng.choice(PLACES),
                                                firm=rng.choice(FIRMS), num=rng.randint(2, 40))
        text = rng.choice(LEADS) + body[0].upper() + body[1:]
        return _example(TOPIC_INSTRUCTION, [("user", text), ("model", label)])

    return make


# --- paraphrased5: five e-mail folders, the instruction written a different way each time -----

FOLDERS: dict[str, tuple[str, ...]] = {
    "invoice": ("Attached is invoice {num} for {amount} euros, due in {days} days.",
                "Your bill for {month} is ready: {amount} euros.", "Payment reminder: invoice {num} is overdue."),
    "meeting": ("Can we move our call to {weekday} at {hour}?", "Team sync on {weekday}, room {num}.",
                "Are you free for a quick meeting {weekday} afternoon?"),
    "newsletter": ("This week in gardening: {num} tips for {month}.", "Our {month} digest: top stories and deals.",
                   "You are receiving this because you subscribed to our updates."),
    "personal": ("Happy birthday! Dinner at mine on {weekday}?", "Mum says hi, call her when you can.",
                 "Photos from the trip in {month} are in the album."),
    "spam": ("You won {amount} euros! Click here to claim.", "Cheap watches, {num} percent off today only.",
             "Your account will be closed unless you verify now."),
}
PHRASINGS = (
    "Which folder does this e-mail belong in?", "Sort this message into a folder.", "File the e-mail:",
    "Pick the right folder for the mail below.", "Where should this e-mail go?", "Folder for this message?",
    "Classify the e-mail into its folder.", "Tell me the folder for this e-mail.",
)
OPTIONS = "invoice, meeting, newsletter, personal or spam"
MONTHS = ("January", "March", "May", "July", "September", "November")
HOURS = ("9:00", "10:30", "13:00", "15:45", "17:00")


def paraphrased5(rng: random.Random) -> Callable[[int], dict]:
    labels = list(FOLDERS)

    def make(index: int) -> dict:
        label = labels[index % len(labels)]
        mail = rng.choice(FOLDERS[label]).format(num=rng.randint(2, 999), amount=rng.randint(10, 5000),
                                                 days=rng.randint(3, 30), month=rng.choice(MONTHS),
                                                 weekday=rng.choice(WEEKDAYS), hour=rng.choice(HOURS))
        prompt = f"{rng.choice(PHRASINGS)} ({OPTIONS})\n{mail}"
        return _example(None, [("user", prompt), ("model", label)])

    return make


# --- extraction: the name and city out of a short message ------------------------------------

FIRST_NAMES = ("Maria", "John", "Aiko", "Pierre", "Fatima", "Lars", "Chen", "Olga", "Diego", "Amara",
               "Tom", "Priya", "Ivan", "Sofia", "Kwame", "Elena", "Mateo", "Hana", "Liam", "Noor")
LAST_NAMES = ("Lopez", "Smith", "Tanaka", "Dubois", "Khan", "Berg", "Wang", "Petrova", "Silva", "Okafor",
              "Brown", "Patel", "Novak", "Rossi", "Mensah", "Costa", "Garcia", "Sato", "Walsh", "Haddad")
MESSAGES = (
    "Hi, this is {name} from {city}. My parcel has not arrived.",
    "{name} here, writing from {city} about my last order.",
    "Hello, my name is {name} and I live in {city}. I want a refund.",
    "Order placed by {name}, shipping to {city}, is late.",
    "Please call {name} back, she is in {city} until Friday.",
    "Customer {name} ({city}) asks about the warranty.",
    "Good morning from {city}! {name} speaking, the app keeps crashing.",
)
EXTRACTION_INSTRUCTION = "Extract the customer's name and city as: name; city"


def extraction(rng: random.Random) -> Callable[[int], dict]:
    def make(index: int) -> dict:
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        city = rng.choice(CITIES)
        text = rng.choice(MESSAGES).format(name=name, city=city)
        return _example(EXTRACTION_INSTRUCTION, [("user", text), ("model", f"{name}; {city}")])

    return make


@dataclass(frozen=True)
class Task:
    name: str
    make: Callable[[random.Random], Callable[[int], dict]]
    sizes: tuple[int, int, int]  # train, validation, held-out
    classes: int | None  # None: not a classification task


TASKS = (
    Task("intents10", intents10, (120, 40, 100), 10),
    Task("topics20", topics20, (160, 40, 100), 20),
    Task("paraphrased5", paraphrased5, (100, 40, 100), 5),
    Task("extraction", extraction, (150, 40, 100), None),
)


def task_splits(task: Task, seed: int = 11) -> dict[str, list[dict]]:
    """The three splits of `task`; no user text appears twice across them."""
    rng = random.Random(f"{task.name}:{seed}")
    make = task.make(rng)
    seen: set[str] = set()
    splits = {}
    for split, count in zip(SPLITS, task.sizes):
        rows, index, attempts = [], 0, 0
        while len(rows) < count:
            attempts += 1
            if attempts > 100 * count:
                raise RuntimeError(f"{task.name}: too few distinct {split} examples for {count}")
            row = make(index)
            text = row["contents"][0]["parts"][0]["text"]
            if text in seen:
                continue
            seen.add(text)
            rows.append(row)
            index += 1
        rng.shuffle(rows)
        splits[split] = rows
    return splits


def write_task(task: Task, out: Path, seed: int = 11) -> dict[str, Path]:
    """Write `out/<task>/{train,validation,heldout}.jsonl`; returns the path of each split."""
    paths = {}
    for split, rows in task_splits(task, seed).items():
        paths[split] = out / task.name / f"{split}.jsonl"
        write_jsonl(paths[split], rows)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    for task in TASKS:
        for split, path in write_task(task, args.out, args.seed).items():
            print(f"{task.name:13s} {split:10s} {path}")


if __name__ == "__main__":
    main()
