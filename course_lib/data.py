"""The course's training data: orca-math from the Hub (or a Hub mirror, or ModelScope), else our own word problems.

The bundled problems are generated here, from seeded templates (our own text, copied from no data set),
in orca-math's schema: `question` and `answer`. Every answer is a short worked solution that ends with
the line `The answer is N.`, so `final_answer` can score a model by exact match on either source.
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass
from fractions import Fraction

from course_lib.language import tr

TRAIN_SIZE = 2000  # rows; orca-math's train[:1%] is also 2,000 rows
HELDOUT_SIZE = 200  # rows, never seen in training
TRAIN_SEED = 2024
HELDOUT_SEED = 7  # a different seed, and held-out questions that also occur in train are dropped
HUB_DATASET = "microsoft/orca-math-word-problems-200k"
HUB_SPLITS = {"train": "train[:1%]", "heldout": "train[-200:]"}  # orca-math has only a train split
DATA_ENV_VAR = "ERNIE_COURSE_DATA"
# orca-math on ModelScope, under the same name (a copy of the Hub's data set): modelscope.cn/datasets/microsoft/
# orca-math-word-problems-200k, as listed by the data set index selectdataset.com (read 2026-12; not downloaded
# from here: ModelScope is out of reach of the machines that test the course).
MODELSCOPE_DATASET = "microsoft/orca-math-word-problems-200k"
SOURCES = ("auto", "hub", "bundled", "modelscope")

NAMES = [("Maya", "she", "her"), ("Omar", "he", "his"), ("Lena", "she", "her"), ("Tariq", "he", "his"),
         ("Sofia", "she", "her"), ("Kenji", "he", "his"), ("Amara", "she", "her"), ("Diego", "he", "his"),
         ("Priya", "she", "her"), ("Lucas", "he", "his"), ("Mei", "she", "her"), ("Noah", "he", "his"),
         ("Zainab", "she", "her"), ("Ivan", "he", "his"), ("Chloe", "she", "her"), ("Mateo", "he", "his")]


def money(cents: int) -> str:
    return f"${cents // 100}" if cents % 100 == 0 else f"${cents // 100}.{cents % 100:02d}"


def plain(value) -> str:
    """An exact number as the text shows it: 12, 2.5 (values here never need more than 2 decimals)."""
    value = Fraction(value)
    if value.denominator == 1:
        return str(value.numerator)
    assert (value * 100).denominator == 1, f"{value} needs more than 2 decimals"
    return f"{float(value):.2f}".rstrip("0")


def final_line(value: Fraction) -> str:
    # Whole numbers stay whole; the only fractional answers are money, written with cents: 3.50.
    return f"The answer is {value.numerator if value.denominator == 1 else f'{float(value):.2f}'}."


# Each kind draws its numbers, words one question, and returns (question, steps, exact answer).
# Phrasings vary, but within a kind the numbers always appear in the same order in the question: the
# test relies on that to recompute every answer from the question text alone.

def change_from_a_bill(rng, w):
    item = rng.choice(["notebooks", "pens", "sandwiches", "comic books", "bags of rice", "candles", "mugs"])
    count, price = rng.randint(2, 9), rng.randrange(50, 1000, 25)  # price in cents
    cost = count * price
    bill = next(b for b in (500, 1000, 2000, 5000, 10000) if b > cost)
    question = rng.choice([
        "{name} buys {n} {item} that cost {p} each and pays with a {b} bill. How much change does {he} get?",
        "At the market, {n} {item} cost {p} apiece. {name} hands the seller {b}. How much change should "
        "{name} get back?",
        "{n} {item} at {p} each. How much change from {b}?",
        "{name} is getting ready for the new school year and needs {n} {item}. The shop down the street "
        "sells them for {p} each. If {he} pays with a {b} bill, how much money will {he} receive in change?",
    ]).format(n=count, item=item, p=money(price), b=money(bill), **w)
    steps = [f"First find the cost of the {item}: {count} × {money(price)} = {money(cost)}.",
             f"{w['name']} pays {money(bill)}, so the change is {money(bill)} - {money(cost)} = "
             f"{money(bill - cost)}."]
    return question, steps, Fraction(bill - cost, 100)


def equal_sharing(rng, w):
    thing = rng.choice(["stickers", "marbles", "cookies", "pencils", "stamps", "apples", "trading cards"])
    groups, each = rng.randint(2, 9), rng.randint(3, 25)
    total = groups * each
    question = rng.choice([
        "{name} has {t} {thing} and shares them equally among {k} friends. How many {thing} does each "
        "friend get?",
        "A teacher splits {t} {thing} evenly between {k} tables. How many {thing} are on each table?",
        "{t} {thing} go into {k} boxes, the same number in every box. How many {thing} are in one box?",
        "After a long afternoon of sorting, {name} has collected {t} {thing}. {He} wants to give all of "
        "them away, split fairly so that each of {his} {k} cousins gets exactly the same number. How many "
        "{thing} will each cousin receive?",
    ]).format(t=total, k=groups, thing=thing, **w)
    steps = [f"The {total} {thing} are split into {groups} equal groups, so we divide the total by the "
             f"number of groups: {total} ÷ {groups} = {each}.",
             f"Check: {groups} × {each} = {total}, so each group gets {each} {thing}."]
    return question, steps, Fraction(each)


def distance_from_speed(rng, w):
    template, low, high = rng.choice([  # speeds that fit the vehicle, in its unit per hour
        ("A train travels at {v} kilometres per hour. How far does it go in {t} hours?", 60, 160),
        ("{name} drives at a steady {v} miles per hour for {t} hours. How many miles does {he} cover?", 30, 70),
        ("A cyclist in a long charity race keeps an average speed of {v} kilometres per hour and rides for "
         "{t} hours without stopping, apart from grabbing water bottles on the way. What distance, in "
         "kilometres, does the cyclist ride?", 12, 30),
    ])
    unit = "miles" if "miles" in template else "kilometres"
    speed, hours = rng.randrange(low, high + 1, 2), Fraction(rng.choice(["1.5", "2", "2.5", "3", "3.5", "4"]))
    distance = speed * hours  # speed is even, so half hours still give whole distances
    question = template.format(v=speed, t=plain(hours), **w)
    steps = [f"Distance is speed multiplied by time. The speed is {speed} {unit} per hour and the time is "
             f"{plain(hours)} hours, so the distance is {speed} × {plain(hours)} = {plain(distance)} {unit}."]
    return question, steps, distance


def travel_time(rng, w):
    template, low, high = rng.choice([
        ("A bus has to cover {d} kilometres at {v} kilometres per hour. How many hours does the trip take?",
         40, 90),
        ("{name} plans a road trip of {d} miles to visit {his} grandparents. If {he} drives at {v} miles per "
         "hour the whole way, how long will the drive take, in hours?", 40, 70),
        ("How many hours does a {d}-kilometre flight take at {v} kilometres per hour?", 600, 900),
    ])
    speed, hours = rng.randrange(low, high + 1, 5), rng.randint(2, 8)
    distance = speed * hours
    question = template.format(d=distance, v=speed, **w)
    steps = [f"Time is distance divided by speed: {distance} ÷ {speed} = {hours} hours.",
             f"Check: {speed} × {hours} = {distance}, so the whole trip takes {hours} hours."]
    return question, steps, Fraction(hours)


def percent_discount(rng, w):
    item = rng.choice(["jacket", "bicycle", "lamp", "pair of boots", "backpack", "board game", "tent"])
    price, percent = rng.randrange(20, 401, 20), rng.choice([10, 15, 20, 25, 30, 35, 40, 50])
    discount = price * percent // 100  # exact: price is a multiple of 20, percent of 5
    question = rng.choice([
        "A {item} costs ${p}. It is on sale for {r}% off. What is the sale price in dollars?",
        "{name} sees a {item} priced at ${p}. The shop gives a {r}% discount. How much does {name} pay?",
        "The usual price of a {item} is ${p}, but this week everything in the store is reduced by {r}% "
        "for the spring sale. How many dollars does the {item} cost this week?",
    ]).format(item=item, p=price, r=percent, **w)
    steps = [f"The discount is {percent}% of ${price}, which is {price} × {percent} ÷ 100 = ${discount}.",
             f"Take the discount off the usual price: ${price} - ${discount} = ${price - discount}."]
    return question, steps, Fraction(price - discount)


def two_item_bill(rng, w):
    first, second = rng.sample(["apples", "oranges", "bread rolls", "yogurts", "juice boxes", "muffins"], 2)
    n1, p1, n2, p2 = rng.randint(2, 8), rng.randrange(25, 400, 25), rng.randint(2, 8), rng.randrange(25, 400, 25)
    c1, c2 = n1 * p1, n2 * p2
    question = rng.choice([
        "{name} buys {n1} {a} at {p1} each and {n2} {b} at {p2} each. How much does {he} spend in all?",
        "For a class picnic, {name} picks up {n1} {a} that cost {p1} each, then stops at another stall "
        "for {n2} {b} costing {p2} each. What is the total bill for the picnic food?",
        "What do {n1} {a} at {p1} each and {n2} {b} at {p2} each cost together?",
    ]).format(n1=n1, a=first, p1=money(p1), n2=n2, b=second, p2=money(p2), **w)
    steps = [f"The {first} cost {n1} × {money(p1)} = {money(c1)}.",
             f"The {second} cost {n2} × {money(p2)} = {money(c2)}.",
             f"Add the two amounts to get the total: {money(c1)} + {money(c2)} = {money(c1 + c2)}."]
    return question, steps, Fraction(c1 + c2, 100)


def ages(rng, w):
    relative = rng.choice(["son", "daughter", "nephew", "niece", "grandson"])
    times, child, years = rng.randint(2, 6), rng.randint(3, 14), rng.randint(2, 15)
    now = times * child
    question = rng.choice([
        "{name} is {m} times as old as {his} {rel}. The {rel} is {c} years old. How old will {name} be in "
        "{y} years?",
        "{name}'s age is {m} times the age of {his} {rel}, who is {c}. What will {name}'s age be {y} years "
        "from now?",
        "A grandmother is {m} times as old as her {rel}. If the {rel} is {c} years old today, how old will "
        "the grandmother be after {y} more years?",
    ]).format(m=times, c=child, y=years, rel=relative, **w)
    steps = [f"The {relative} is {child}, so today the older person is {times} × {child} = {now} years old.",
             f"Everyone gets {years} years older, so the age then will be {now} + {years} = {now + years}."]
    return question, steps, Fraction(now + years)


def carpet_cost(rng, w):
    length, width, per_square_metre = rng.randint(3, 12), rng.randint(2, 9), rng.randint(5, 40)
    area = length * width
    question = rng.choice([
        "A room is {l} metres long and {w} metres wide. Carpet costs ${c} per square metre. How much does "
        "it cost to carpet the whole floor?",
        "{name} wants to tile a rectangular patio measuring {l} metres by {w} metres. Tiles cost ${c} for "
        "each square metre. What will the tiles cost?",
        "Turf for a {l} metre by {w} metre lawn costs ${c} per square metre. Find the total cost.",
    ]).format(l=length, w=width, c=per_square_metre, **w)
    steps = [f"The area of a rectangle is length times width: {length} × {width} = {area} square metres.",
             f"Each square metre costs ${per_square_metre}, so the total is {area} × ${per_square_metre} = "
             f"${area * per_square_metre}."]
    return question, steps, Fraction(area * per_square_metre)


def fence_perimeter(rng, w):
    length, width = rng.randint(5, 60), rng.randint(3, 40)
    question = rng.choice([
        "A rectangular garden is {l} metres long and {w} metres wide. How many metres of fence are needed "
        "to go all the way around it?",
        "{name} walks once around the edge of a rectangular field that measures {l} metres by {w} metres. "
        "How far does {he} walk, in metres?",
        "Find the perimeter of a {l} m by {w} m rectangle.",
    ]).format(l=length, w=width, **w)
    steps = [f"Going around a rectangle covers each side twice. One length plus one width is "
             f"{length} + {width} = {length + width} metres.",
             f"The full perimeter is 2 × {length + width} = {2 * (length + width)} metres."]
    return question, steps, Fraction(2 * (length + width))


UNITS = [("kilograms", "grams", 1000, "flour"), ("litres", "millilitres", 1000, "juice"),
         ("kilometres", "metres", 1000, "wire"), ("hours", "minutes", 60, "study time"),
         ("metres", "centimetres", 100, "ribbon")]


def units_left_over(rng, w):
    big, small, factor, stuff = rng.choice(UNITS)
    amount, used = rng.randint(2, 9), rng.randrange(factor // 10, factor, factor // 20)
    question = rng.choice([
        "{name} has {a} {big} of {stuff} and uses {u} {small}. How many {small} of {stuff} are left?",
        "There are {a} {big} of {stuff} at the start of the day. By evening, {u} {small} have been used "
        "up. How many {small} remain?",
    ]).format(a=amount, big=big, u=used, small=small, stuff=stuff, **w)
    steps = [f"Change everything to {small} first. One of the {big} is {factor} {small}, so {amount} {big} "
             f"is {amount} × {factor} = {amount * factor} {small}.",
             f"Then subtract what was used: {amount * factor} - {used} = {amount * factor - used} {small}."]
    return question, steps, Fraction(amount * factor - used)


def workers_and_days(rng, w):
    job = rng.choice(["paint a school", "build a wall", "harvest an orchard", "lay a footpath"])
    workers = rng.randint(2, 12)
    days = rng.choice([d for d in range(2, 16) if d != workers])  # so a crew of `days` workers always fits
    work = workers * days
    crew = rng.choice([d for d in range(2, 25) if work % d == 0 and d != workers])  # whole days only
    question = rng.choice([
        "It takes {a} workers {d} days to {job}. How many days would {b} workers need at the same pace?",
        "{a} people can {job} in {d} days. If {b} people do the job instead, all working at the same "
        "speed, how many days will it take?",
    ]).format(a=workers, d=days, b=crew, job=job)
    steps = [f"Count the whole job in worker-days: {workers} × {days} = {work} worker-days.",
             f"Shared among {crew} workers, it takes {work} ÷ {crew} = {work // crew} days."]
    return question, steps, Fraction(work, crew)


def weeks_of_saving(rng, w):
    goal = rng.choice(["a bike", "a guitar", "a tablet", "a pair of skates", "a telescope"])
    per_week, weeks, already = rng.randrange(5, 41, 5), rng.randint(3, 20), rng.randrange(10, 101, 10)
    price = already + per_week * weeks
    question = rng.choice([
        "{name} wants {g} that costs ${c}. {He} already has ${h} and saves ${s} each week. How many weeks "
        "until {he} can buy it?",
        "{g_cap} costs ${c}. {name} has saved ${h} so far and puts away ${s} a week. In how many weeks "
        "will {he} have enough?",
    ]).format(g=goal, g_cap=goal[0].upper() + goal[1:], c=price, h=already, s=per_week, **w)
    steps = [f"{w['name']} needs ${price} and already has ${already}, so {w['he']} is still short by "
             f"${price} - ${already} = ${price - already}.",
             f"Saving ${per_week} a week, that takes {price - already} ÷ {per_week} = {weeks} weeks."]
    return question, steps, Fraction(weeks)


def fractions_left(rng, w):
    item = rng.choice(["muffins", "loaves", "cupcakes", "pies", "bagels"])
    b, d = rng.randint(2, 5), rng.randint(2, 4)
    a, c = rng.randint(1, b - 1), rng.randint(1, d - 1)
    total = b * d * rng.randint(1, 6)  # makes both fractions come out whole
    first = total * a // b
    rest = total - first
    second = rest * c // d
    question = rng.choice([
        "A baker makes {t} {item}. She sells {a}/{b} of them in the morning and {c}/{d} of the remaining "
        "{item} in the afternoon. How many {item} are left?",
        "{name} bakes {t} {item} for a fair, gives away {a}/{b} of them, then sells {c}/{d} of what is "
        "left. How many {item} does {he} still have?",
    ]).format(t=total, a=a, b=b, c=c, d=d, item=item, **w)
    steps = [f"First part: {a}/{b} of {total} is {total} × {a} ÷ {b} = {first}.",
             f"That leaves {total} - {first} = {rest} {item}.",
             f"Second part: {c}/{d} of {rest} is {rest} × {c} ÷ {d} = {second}.",
             f"Left at the end: {rest} - {second} = {rest - second} {item}."]
    return question, steps, Fraction(rest - second)


def average(rng, w):
    verb, what, low, high = rng.choice([("scores", "points", 55, 100), ("reads", "pages", 10, 60),
                                        ("swims", "laps", 8, 30), ("walks", "kilometres", 5, 25)])
    count = rng.randint(3, 5)
    values = [rng.randint(low, high) for _ in range(count)]
    values[-1] -= sum(values) % count  # makes the mean a whole number
    listed = ", ".join(map(str, values[:-1])) + f" and {values[-1]}"
    question = rng.choice([
        "{name} {verb} {v} {what} on {n} days. What is the average per day?",
        "Over {n} days, {name} keeps a diary and {verb} {v} {what}. On average, how many {what} is that "
        "per day?",
    ]).format(v=listed, verb=verb, what=what, n=["three", "four", "five"][count - 3], **w)
    steps = [f"The average is the total divided by the number of days. Add up all the days: "
             f"{' + '.join(map(str, values))} = {sum(values)}.",
             f"Divide by the {count} days: {sum(values)} ÷ {count} = {sum(values) // count} {what} per day."]
    return question, steps, Fraction(sum(values), count)


def unit_price(rng, w):
    item = rng.choice(["pencils", "erasers", "tickets", "bottles of water", "postcards"])
    few, each, more = rng.randint(2, 6), rng.randrange(25, 300, 5), rng.randint(7, 15)
    question = rng.choice([
        "{a} {item} cost {p}. How much do {b} {item} cost?",
        "At a kiosk, {name} buys {a} {item} for {p}. At the same price per item, what would {b} {item} "
        "cost?",
    ]).format(a=few, item=item, p=money(few * each), b=more, **w)
    steps = [f"First find the price of one: divide the total price by the number bought, "
             f"{money(few * each)} ÷ {few} = {money(each)}.",
             f"Then {more} of them cost {more} × {money(each)} = {money(more * each)}."]
    return question, steps, Fraction(more * each, 100)


KINDS = {f.__name__: f for f in [change_from_a_bill, equal_sharing, distance_from_speed, travel_time,
                                  percent_discount, two_item_bill, ages, carpet_cost, fence_perimeter,
                                  units_left_over, workers_and_days, weeks_of_saving, fractions_left,
                                  average, unit_price]}


def draw_problems(n: int, seed: int, kinds: dict, person, final) -> list[dict]:
    """`n` distinct problems drawn from `random.Random(seed)`: same seed, same rows. Each row is one of
    `kinds`, told about `person(rng)` (the words a template fills in) and ending with `final(answer)`.

    Rows carry `question`, `answer` and `kind` (the template's name, which the tests use to recompute each
    answer from the question text); `split_rows` drops `kind`.
    """
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        kind = rng.choice(list(kinds))
        question, steps, value = kinds[kind](rng, person(rng))
        if question in seen:
            continue
        seen.add(question)
        rows.append({"question": question, "answer": "\n".join(steps + [final(value)]), "kind": kind})
    return rows


def english_person(rng) -> dict:
    name, he, his = rng.choice(NAMES)
    return {"name": name, "he": he, "He": he.capitalize(), "his": his}


def make_word_problems(n: int, seed: int) -> list[dict]:
    """`n` distinct English problems drawn from `random.Random(seed)` (see `draw_problems`)."""
    return draw_problems(n, seed, KINDS, english_person, final_line)


def split_rows(split: str, make, train: tuple[int, int], heldout: tuple[int, int], spare: int) -> list[dict]:
    """The `split` of a generated set as orca-math-shaped rows (`question`, `answer`): `make(size, seed)` with
    the train or held-out (size, seed). Held-out draws `spare` rows more and drops those whose question occurs
    in train, so it repeats no train question."""
    check_split(split)
    rows = make(*train)
    if split == "heldout":
        train_questions = {row["question"] for row in rows}
        size, seed = heldout
        rows = [row for row in make(size + spare, seed) if row["question"] not in train_questions][:size]
    return [{"question": row["question"], "answer": row["answer"]} for row in rows]


def bundled_rows(split: str = "train") -> list[dict]:
    """The bundled split as orca-math-shaped rows (`question`, `answer`); held-out repeats no train question."""
    return split_rows(split, make_word_problems, (TRAIN_SIZE, TRAIN_SEED), (HELDOUT_SIZE, HELDOUT_SEED), spare=100)


# A held-out question that repeats a training question measures memory, not skill. Exact repeats are equal
# once normalised; near repeats (orca-math holds many paraphrases) have the same numbers, in any order, and
# share at least NEAR_REPEAT_JACCARD of their word 3-grams. The numbers must match because a question with
# other numbers is another problem, however alike the words (bundled questions of one template with one number
# changed share up to 0.93). The threshold sits just above the largest overlap measured between bundled
# questions of different templates (0.15; tests/test_data.py measures it again): as low as that allows, since
# a repeat kept inflates the score, while a fresh question dropped costs only a little precision.
NEAR_REPEAT_JACCARD = 0.2


def normalised(text: str) -> str:
    """Lowercase words and numbers, with punctuation and whitespace collapsed: "Find 2,5 m!" -> "find 2,5 m"."""
    return " ".join(re.findall(r"\d+(?:[.,]\d+)*|[^\W\d_]+", text.lower()))


def word_trigrams(text: str) -> set[tuple[str, ...]]:
    words = normalised(text).split()
    return {tuple(words[i:i + 3]) for i in range(max(1, len(words) - 2))}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def training_repeats(train_questions, questions) -> list[str | None]:
    """For each of `questions`: "exact" when it equals a training question once normalised, "near" when a
    training question has the same numbers and a word 3-gram Jaccard of at least NEAR_REPEAT_JACCARD, else None."""
    exact = {normalised(q) for q in train_questions}
    by_numbers: dict[tuple, list] = {}
    for question in train_questions:
        by_numbers.setdefault(tuple(sorted(numbers_in(question))), []).append(word_trigrams(question))
    labels = []
    for question in questions:
        grams = word_trigrams(question)
        same_numbers = by_numbers.get(tuple(sorted(numbers_in(question))), [])
        if normalised(question) in exact:
            labels.append("exact")
        elif any(jaccard(grams, other) >= NEAR_REPEAT_JACCARD for other in same_numbers):
            labels.append("near")
        else:
            labels.append(None)
    return labels


def drop_training_repeats(heldout, train):
    """(`heldout` without the rows whose question repeats one of `train`'s, {"exact": n, "near": n} dropped).
    Both are datasets.Dataset (or anything with a "question" column and `select`)."""
    labels = training_repeats(list(train["question"]), list(heldout["question"]))
    kept = heldout.select([i for i, label in enumerate(labels) if label is None])
    return kept, {"exact": labels.count("exact"), "near": labels.count("near")}


# A number as people write it: -5, −5, $1,250.00, 3.5, .75; a hyphen between digits (3-5) is no minus sign,
# and a power (the 2 of cm^2) is no number. A letter or digit just before it makes it part of a word (x2, B12),
# but a Chinese character does not: Chinese writes numbers without spaces (共42元).
NUMBER = re.compile(r"(?<![^\W\u3400-\u9fff\uf900-\ufaff]|[.^])"
                    r"([-−])?\$?([-−])?(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)")
# "The answer is 12", "#### 12", "\boxed{12}", and the Chinese set's "答案是 12" (also 答案为 12, 答案：12).
ANSWER_MARKER = re.compile(r"answer is|####|\\boxed\{|答案\s*[是为:：]", re.IGNORECASE)


def numbers_in(text: str) -> list[float]:
    return [number_value(match) for match in NUMBER.finditer(text)]


def final_number_span(text: str) -> tuple[float, int, int] | None:
    """(value, start, end) of the final number: the first after the last "The answer is" (or "####",
    "\\boxed{", "答案是"), else the last number of the text; None when there is no number."""
    markers = list(ANSWER_MARKER.finditer(text))
    if markers:
        tail = markers[-1].end()
        after = NUMBER.search(text[tail:])
        if after:
            return number_value(after), tail + after.start(), tail + after.end()
    found = list(NUMBER.finditer(text))
    return (number_value(found[-1]), found[-1].start(), found[-1].end()) if found else None


def number_value(match: re.Match) -> float:
    sign_before, sign_after, digits = match.groups()
    value = float(digits.replace(",", ""))
    return -value if (sign_before or sign_after) else value


def final_answer(text: str) -> float | None:
    """The final number of an answer: the one after the last "The answer is" (or "####"), else the last number.

    Real orca-math answers are free text ("... so she has 12 apples left."), hence the fallback.
    """
    span = final_number_span(text)
    return span[0] if span else None


# A sentence ends at a line break, at . ! ? before a space or the end ("3.50" is no end), or at 。！？; a number is not
# the whole answer when its sentence also holds a fraction or ratio (3/4, 2:3).
SENTENCE_END = re.compile(r"\n|[.!?](?=\s|$)|[。！？]")  # Chinese full stops need no space after
FRACTION_OR_RATIO = re.compile(r"\d\s*[/:]\s*\.?\d")


def clear_final_number(text: str) -> float | None:
    """`final_answer(text)` when the text states it without ambiguity, else None: the sentence the final
    number stands in must hold no other number, fraction or ratio. References such as "the length is 12 cm
    and the width 8 cm", "3/4 of the cake is left" or "the ratio is 2:3" have no single final number to match."""
    span = final_number_span(text)
    if span is None:
        return None
    value, start, end = span
    ends = list(SENTENCE_END.finditer(text))
    first = max((m.end() for m in ends if m.end() <= start), default=0)
    last = min((m.start() for m in ends if m.start() >= end), default=len(text))
    sentence = text[first:last]
    if len(numbers_in(sentence)) != 1 or FRACTION_OR_RATIO.search(sentence):
        return None
    return value


def answers_match(predicted_text: str, reference_text: str, tol: float = 1e-6) -> bool:
    """Exact match on the final numbers; an answer with no number never matches."""
    predicted, reference = final_answer(predicted_text), final_answer(reference_text)
    return predicted is not None and reference is not None and abs(predicted - reference) <= tol


def check_split(split: str) -> None:
    if split not in HUB_SPLITS:
        raise ValueError(tr(f"split={split!r} is not one of {sorted(HUB_SPLITS)}",
                            f"split={split!r} 不是 {sorted(HUB_SPLITS)} 之一"))


@dataclass(frozen=True)
class DataChoice:
    source: str  # "hub", "mirror" (the Hub mirror HF_ENDPOINT names), "modelscope" or "bundled"
    name: str
    reason: str
    num_rows: int

    def banner(self) -> str:
        if self.source == "hub":
            head = tr(f"ONLINE DATA: using {self.name} from the Hugging Face Hub, {self.num_rows} rows.",
                      f"在线数据：使用来自 Hugging Face Hub 的 {self.name}，共 {self.num_rows} 行。")
        elif self.source == "mirror":
            head = tr(f"ONLINE DATA: using {self.name} from the Hub mirror (HF_ENDPOINT), {self.num_rows} rows.",
                      f"在线数据：使用来自 Hub 镜像（HF_ENDPOINT）的 {self.name}，共 {self.num_rows} 行。")
        elif self.source == "modelscope":
            head = tr(f"ONLINE DATA: using {self.name} from ModelScope, {self.num_rows} rows.",
                      f"在线数据：使用来自魔搭 ModelScope 的 {self.name}，共 {self.num_rows} 行。")
        else:
            head = tr(f"OFFLINE DATA: using the course's {self.name}, {self.num_rows} rows, not orca-math from the Hub.",
                      f"离线数据：使用课程自带的 {self.name}，共 {self.num_rows} 行，而不是来自 Hub 的 orca-math。")
        return head + tr(f"\nWhy: {self.reason}", f"\n原因：{self.reason}")


def chosen_source(source: str) -> tuple[str, str]:
    """The source to use and where that choice came from: ERNIE_COURSE_DATA refines source="auto"."""
    if source not in SOURCES:
        raise ValueError(tr(f"source={source!r} is not one of {list(SOURCES)}",
                            f"source={source!r} 不是 {list(SOURCES)} 之一"))
    from_env = os.environ.get(DATA_ENV_VAR, "").strip().lower()
    if source != "auto" or not from_env:
        return source, tr(f"source={source!r} was asked for", f"指定了 source={source!r}")
    if from_env not in SOURCES:
        raise ValueError(tr(f"{DATA_ENV_VAR}={os.environ[DATA_ENV_VAR]!r} is not one of {list(SOURCES)}",
                            f"{DATA_ENV_VAR}={os.environ[DATA_ENV_VAR]!r} 不是 {list(SOURCES)} 之一"))
    return from_env, tr(f"{DATA_ENV_VAR}={from_env} is set", f"设置了 {DATA_ENV_VAR}={from_env}")


def load_math_dataset(split: str = "train", source: str = "auto"):
    """(datasets.Dataset with question/answer columns, DataChoice saying which data it is and why).

    source: "auto" uses orca-math from the Hub (or the mirror HF_ENDPOINT names) when it is reachable, else
    from ModelScope when ERNIE_COURSE_MODEL=modelscope took the model from there, else the bundled problems;
    "hub", "modelscope" or "bundled" force one. ERNIE_COURSE_DATA overrides the default "auto".
    """
    check_split(split)
    source, asked = chosen_source(source)
    if source == "bundled":
        return bundled_dataset(split, f"{asked}.")
    if source == "modelscope":
        return modelscope_dataset(split, f"{asked}.")
    from course_lib.environment import hub_endpoint, hub_reachable, is_mirror

    if not hub_reachable():
        if source == "hub":
            raise ConnectionError(tr(
                f"{asked}, but the Hugging Face Hub is not reachable (or HF_HUB_OFFLINE=1). Set "
                f"{DATA_ENV_VAR}=bundled to train on the course's bundled word problems, or "
                f"{DATA_ENV_VAR}=modelscope to load orca-math from ModelScope.",
                f"{asked}，但无法访问 Hugging Face Hub（或设置了 HF_HUB_OFFLINE=1）。设置 {DATA_ENV_VAR}=bundled "
                f"可改用课程自带的应用题，设置 {DATA_ENV_VAR}=modelscope 可从魔搭 ModelScope 加载 orca-math。"))
        if os.environ.get("ERNIE_COURSE_MODEL", "").strip().lower() == "modelscope":
            return modelscope_dataset(split, tr(
                "The Hugging Face Hub is not reachable and ERNIE_COURSE_MODEL=modelscope is set, so the data comes "
                "from ModelScope too.",
                "无法访问 Hugging Face Hub，且设置了 ERNIE_COURSE_MODEL=modelscope，因此数据也从魔搭 ModelScope 获取。"),
                fall_back=True)
        return bundled_dataset(split, tr(
            "The Hugging Face Hub is not reachable (or HF_HUB_OFFLINE=1), so the course falls back to its bundled "
            "word problems. To load orca-math in mainland China, set HF_ENDPOINT=https://hf-mirror.com before the "
            f"import cell, or {DATA_ENV_VAR}=modelscope (README: 'Reaching the model and data from mainland China').",
            "无法访问 Hugging Face Hub（或设置了 HF_HUB_OFFLINE=1），因此课程改用自带的应用题。在中国大陆若要加载 "
            f"orca-math，请在导入单元格之前设置 HF_ENDPOINT=https://hf-mirror.com，或设置 {DATA_ENV_VAR}=modelscope"
            "（见 README.zh.md 的“在中国大陆获取模型和数据”一节）。"))
    import datasets

    where = "mirror" if is_mirror(hub_endpoint()) else "hub"
    hub_split = HUB_SPLITS[split]
    try:
        table = datasets.load_dataset(HUB_DATASET, split=hub_split).select_columns(["question", "answer"])
    except Exception as error:  # noqa: BLE001 - any failure here means "no orca-math today"
        if source == "hub":
            raise ConnectionError(tr(f"{asked}, but loading {HUB_DATASET} failed: {error}",
                                     f"{asked}，但加载 {HUB_DATASET} 失败：{error}")) from error
        why = tr(f"The Hub ({hub_endpoint()}) answered, but loading {HUB_DATASET} failed ({type(error).__name__}: "
                 f"{error}), so the course falls back to its bundled word problems.",
                 f"Hub（{hub_endpoint()}）有响应，但加载 {HUB_DATASET} 失败（{type(error).__name__}：{error}），"
                 "因此课程改用自带的应用题。")
        return bundled_dataset(split, why)
    if source == "hub":
        why = f"{asked}."
    elif where == "mirror":
        why = tr(f"The Hub mirror {hub_endpoint()} is reachable, so the course uses the real data.",
                 f"Hub 镜像 {hub_endpoint()} 可以访问，因此课程使用真实数据。")
    else:
        why = tr("The Hugging Face Hub is reachable, so the course uses the real data.",
                 "可以访问 Hugging Face Hub，因此课程使用真实数据。")
    return table, DataChoice(where, f"{HUB_DATASET} ({hub_split})", why, len(table))


def modelscope_dataset(split: str, reason: str, fall_back: bool = False):
    """orca-math's ModelScope copy (MODELSCOPE_DATASET): its parquet files downloaded once into the work folder
    with the `modelscope` client, then read by `datasets` with the same split slices as the Hub's. When
    `fall_back`, any failure gives the bundled problems with the banner saying why; else it raises."""
    from course_lib.paths import work_dir

    try:
        try:
            from modelscope import snapshot_download
        except ImportError as error:
            raise ModuleNotFoundError(tr(
                "Loading orca-math from ModelScope needs the ModelScope client, which is not installed: run `pip "
                f"install modelscope` (in a notebook: `!pip install modelscope`), or set {DATA_ENV_VAR}=bundled.",
                "从魔搭 ModelScope 加载 orca-math 需要 ModelScope 客户端，但它没有安装：请运行 `pip install "
                f"modelscope`（在 notebook 里：`!pip install modelscope`），或设置 {DATA_ENV_VAR}=bundled。")) from error
        import datasets

        folder = work_dir() / "data" / "modelscope" / MODELSCOPE_DATASET
        snapshot_download(repo_id=MODELSCOPE_DATASET, repo_type="dataset", local_dir=str(folder),
                          allow_patterns=["*.parquet"])
        files = sorted(str(path) for path in folder.rglob("*.parquet"))
        if not files:
            raise FileNotFoundError(tr(f"ModelScope's {MODELSCOPE_DATASET} gave no parquet files in {folder}",
                                       f"魔搭 ModelScope 的 {MODELSCOPE_DATASET} 在 {folder} 中没有 parquet 文件"))
        table = datasets.load_dataset("parquet", data_files=files, split=HUB_SPLITS[split])
        table = table.select_columns(["question", "answer"])
    except Exception as error:  # noqa: BLE001 - with fall_back, any failure means "bundled problems today"
        if not fall_back:
            raise
        return bundled_dataset(split, reason + tr(f" But loading it failed ({type(error).__name__}: {error}), so the "
                                                  "course falls back to its bundled word problems.",
                                                  f"但加载失败（{type(error).__name__}：{error}），因此课程改用自带的应用题。"))
    return table, DataChoice("modelscope", f"{MODELSCOPE_DATASET} ({HUB_SPLITS[split]})", reason, len(table))


def bundled_dataset(split: str, reason: str):
    import datasets

    table = datasets.Dataset.from_list(bundled_rows(split))
    seed = TRAIN_SEED if split == "train" else HELDOUT_SEED
    name = tr(f"bundled word problems (course_lib.data, {split}, seed {seed})",
              f"自带应用题（course_lib.data，{split}，种子 {seed}）")
    return table, DataChoice("bundled", name, reason, len(table))


def to_messages(row: dict) -> dict:
    """One row in the conversational format TRL's SFTTrainer consumes."""
    return {"messages": [{"role": "user", "content": row["question"]},
                         {"role": "assistant", "content": row["answer"]}]}
