"""Chinese word problems with worked Chinese answers, generated like the English ones in course_lib.data.

Our own text, from seeded templates, in orca-math's schema (`question`, `answer`). Every answer works the
problem in steps and ends with the line `答案是 N。`, which `course_lib.data.final_answer` reads, so a model
trained on them is scored exactly as on the English set. Arithmetic is exact (Fraction); within a kind the
numbers always appear in the question in the same order, so tests/test_data_zh.py recomputes every answer
from the question text alone.
"""

from __future__ import annotations

from fractions import Fraction

from course_lib.data import draw_problems, plain, split_rows

ZH_TRAIN_SIZE = 500  # rows: a small set, for an exercise, not the course's main data
ZH_HELDOUT_SIZE = 100  # rows, never seen in training
ZH_TRAIN_SEED = 2025
ZH_HELDOUT_SEED = 8  # held-out questions that also occur in train are dropped

NAMES = [("小明", "他"), ("小红", "她"), ("李华", "他"), ("王芳", "她"), ("张伟", "他"), ("刘洋", "他"),
         ("陈静", "她"), ("赵磊", "他"), ("孙丽", "她"), ("周杰", "他"), ("吴敏", "她"), ("郑浩", "他")]


def yuan(value) -> str:
    """An amount of money as the text shows it: 12元, 3.5元, 0.75元."""
    return f"{plain(value)}元"


def final_line(value) -> str:
    return f"答案是 {plain(value)}。"


# Each kind draws its numbers, words one question, and returns (question, steps, exact answer).

def change_from_a_bill(rng, w):
    item, unit = rng.choice([("笔记本", "本"), ("钢笔", "支"), ("面包", "个"), ("蜡烛", "根"), ("杯子", "个")])
    count, price = rng.randint(2, 9), Fraction(rng.randrange(50, 1000, 50), 100)  # price in yuan, to 0.5
    cost = count * price
    bill = next(b for b in (10, 20, 50, 100) if b > cost)
    question = rng.choice([
        "{name}买了{n}{u}{item}，每{u}{p}，付给售货员{b}，应找回多少元？",
        "{name}买{n}{u}{item}，一{u}卖{p}。{he}拿出一张{b}的纸币，能找回多少元？",
        "新学期快到了，{name}去文具店买{n}{u}{item}，每{u}{p}。{he}付了{b}，售货员应该找给{he}多少元？",
    ]).format(n=count, u=unit, item=item, p=yuan(price), b=yuan(bill), **w)
    steps = [f"先算买{item}花的钱：{count} × {plain(price)} = {yuan(cost)}。",
             f"再用付的钱减去花的钱：{bill} - {plain(cost)} = {yuan(bill - cost)}。"]
    return question, steps, bill - cost


def equal_sharing(rng, w):
    thing, unit = rng.choice([("贴纸", "张"), ("弹珠", "颗"), ("饼干", "块"), ("铅笔", "支"), ("苹果", "个")])
    groups, each = rng.randint(2, 9), rng.randint(3, 25)
    total = groups * each
    question = rng.choice([
        "{name}有{t}{u}{thing}，平均分给{k}个朋友，每个朋友分到多少{u}？",
        "老师把{t}{u}{thing}平均分到{k}个小组，每个小组分到几{u}？",
        "{name}整理了一下午，一共收集了{t}{u}{thing}。{he}想把它们全部送给{k}个表兄妹，每人分得同样多。"
        "每人能分到多少{u}{thing}？",
    ]).format(t=total, k=groups, u=unit, thing=thing, **w)
    steps = [f"把{total}{unit}{thing}平均分成{groups}份，用总数除以份数：{total} ÷ {groups} = {each}。",
             f"验证：{groups} × {each} = {total}，所以每份是{each}{unit}。"]
    return question, steps, Fraction(each)


def distance_from_speed(rng, w):
    template, low, high = rng.choice([
        ("一列火车每小时行驶{v}千米，{t}小时行驶多少千米？", 60, 160),
        ("{name}骑自行车，每小时骑{v}千米，骑了{t}小时，一共骑了多少千米？", 12, 30),
        ("一辆汽车以每小时{v}千米的速度在高速公路上匀速行驶，中途没有停车。{t}小时后，它行驶了多少千米？", 60, 120),
    ])
    speed, hours = rng.randrange(low, high + 1, 2), Fraction(rng.choice(["1.5", "2", "2.5", "3", "3.5", "4"]))
    distance = speed * hours  # speed is even, so half hours still give whole distances
    question = template.format(v=speed, t=plain(hours), **w)
    steps = [f"路程 = 速度 × 时间。速度是每小时{speed}千米，时间是{plain(hours)}小时，"
             f"所以路程是 {speed} × {plain(hours)} = {plain(distance)}千米。"]
    return question, steps, distance


def travel_time(rng, w):
    template, low, high = rng.choice([
        ("一辆公共汽车要行驶{d}千米，每小时行驶{v}千米，需要几小时？", 40, 90),
        ("{name}一家开车去外婆家，全程{d}千米。如果一路上每小时行驶{v}千米，要开多少小时？", 40, 80),
        ("一架飞机要飞{d}千米，每小时飞行{v}千米，飞完全程需要多少小时？", 600, 900),
    ])
    speed, hours = rng.randrange(low, high + 1, 5), rng.randint(2, 8)
    distance = speed * hours
    question = template.format(d=distance, v=speed, **w)
    steps = [f"时间 = 路程 ÷ 速度：{distance} ÷ {speed} = {hours}小时。",
             f"验证：{speed} × {hours} = {distance}，所以需要{hours}小时。"]
    return question, steps, Fraction(hours)


def percent_discount(rng, w):
    item, unit = rng.choice([("外套", "件"), ("自行车", "辆"), ("台灯", "盏"), ("书包", "个"), ("帐篷", "顶"),
                             ("运动鞋", "双")])
    price, percent = rng.randrange(20, 401, 20), rng.choice([10, 15, 20, 25, 30, 35, 40, 50])
    discount = Fraction(price * percent, 100)
    question = rng.choice([
        "一{u}{item}原价{p}元，现在降价{r}%，现价多少元？",
        "{name}看中了一{u}标价{p}元的{item}，商店优惠{r}%。{name}要付多少元？",
        "一{u}{item}平时卖{p}元。商场春季促销，所有商品一律降价{r}%，这{u}{item}这周卖多少元？",
    ]).format(item=item, u=unit, p=price, r=percent, **w)
    steps = [f"降价的钱是{price}元的{percent}%：{price} × {percent} ÷ 100 = {yuan(discount)}。",
             f"原价减去降价的钱：{price} - {plain(discount)} = {yuan(price - discount)}。"]
    return question, steps, price - discount


def two_item_bill(rng, w):
    (first, u1), (second, u2) = rng.sample([("苹果", "个"), ("橙子", "个"), ("酸奶", "盒"), ("果汁", "瓶"),
                                            ("面包", "个"), ("鸡蛋", "个")], 2)
    n1, p1 = rng.randint(2, 8), Fraction(rng.randrange(50, 1000, 50), 100)
    n2, p2 = rng.randint(2, 8), Fraction(rng.randrange(50, 1000, 50), 100)
    c1, c2 = n1 * p1, n2 * p2
    question = rng.choice([
        "{name}买了{n1}{u1}{a}，每{u1}{p1}，又买了{n2}{u2}{b}，每{u2}{p2}，一共花了多少元？",
        "班级野餐前，{name}先买了{n1}{u1}{a}，每{u1}{p1}，又到另一个摊位买了{n2}{u2}{b}，每{u2}{p2}。"
        "买这些食物一共要付多少元？",
    ]).format(n1=n1, u1=u1, a=first, p1=yuan(p1), n2=n2, u2=u2, b=second, p2=yuan(p2), **w)
    steps = [f"{first}花了 {n1} × {plain(p1)} = {yuan(c1)}。",
             f"{second}花了 {n2} × {plain(p2)} = {yuan(c2)}。",
             f"两项相加：{plain(c1)} + {plain(c2)} = {yuan(c1 + c2)}。"]
    return question, steps, c1 + c2


def ages(rng, w):
    relative = rng.choice(["爸爸", "妈妈", "舅舅", "姑姑", "爷爷"])
    child, times, years = rng.randint(3, 14), rng.randint(2, 6), rng.randint(2, 15)
    question = rng.choice([
        "{name}今年{c}岁，{r}的年龄比{name}的{k}倍还多{y}岁。{r}今年多少岁？",
        "{name}今年{c}岁。{r}说：“我的年龄是你的{k}倍再加{y}岁。”{r}今年几岁？",
    ]).format(c=child, r=relative, k=times, y=years, **w)
    steps = [f"{w['name']}年龄的{times}倍是 {child} × {times} = {child * times}岁。",
             f"再多{years}岁：{child * times} + {years} = {child * times + years}岁。"]
    return question, steps, Fraction(child * times + years)


def weeks_of_saving(rng, w):
    goal = rng.choice(["一辆自行车", "一把吉他", "一台平板电脑", "一双旱冰鞋", "一架望远镜"])
    per_week, weeks, already = rng.randrange(5, 41, 5), rng.randint(3, 20), rng.randrange(10, 101, 10)
    price = already + per_week * weeks
    question = rng.choice([
        "{name}想买{g}，价格是{c}元。{he}已经存了{h}元，以后每周存{s}元，还要存几周才够？",
        "{g}卖{c}元。{name}现在有{h}元，每周能存下{s}元。再过多少周{he}的钱就够买了？",
    ]).format(g=goal, c=price, h=already, s=per_week, **w)
    steps = [f"还差的钱：{price} - {already} = {price - already}元。",
             f"每周存{per_week}元，需要 {price - already} ÷ {per_week} = {weeks}周。"]
    return question, steps, Fraction(weeks)


def rectangle_perimeter(rng, w):
    place = rng.choice(["菜地", "花坛", "操场", "游泳池", "鱼塘"])
    length = rng.randint(8, 60)
    width = rng.randint(3, min(30, length - 1))  # a rectangle's width is the shorter side
    question = rng.choice([
        "一块长方形{place}长{l}米，宽{w}米，它的周长是多少米？",
        "{name}家有一块长{l}米、宽{w}米的长方形{place}，要在四周围上篱笆，篱笆一共长多少米？",
    ]).format(place=place, l=length, w=width, **w)
    steps = [f"长方形的周长 = (长 + 宽) × 2。先算长加宽：{length} + {width} = {length + width}米。",
             f"再乘 2：{length + width} × 2 = {2 * (length + width)}米。"]
    return question, steps, Fraction(2 * (length + width))


def share_of_a_class(rng, w):
    group = rng.choice(["女生", "戴眼镜的同学", "参加合唱团的同学", "会游泳的同学"])
    total = rng.randrange(20, 61, 4)  # a multiple of 4: 25%, 50% and 75% of it are whole
    percent = rng.choice([p for p in (20, 25, 40, 50, 60, 75) if total * p % 100 == 0])
    part = total * percent // 100
    question = rng.choice([
        "一个班有{t}名学生，其中{r}%是{g}。{g}有多少名？",
        "{name}的班上共有{t}人，{g}占全班人数的{r}%。{g}有几人？",
    ]).format(t=total, r=percent, g=group, **w)
    steps = [f"求{total}的{percent}%：{total} × {percent} ÷ 100 = {part}人。"]
    return question, steps, Fraction(part)


KINDS = {f.__name__: f for f in [change_from_a_bill, equal_sharing, distance_from_speed, travel_time,
                                  percent_discount, two_item_bill, ages, weeks_of_saving, rectangle_perimeter,
                                  share_of_a_class]}


def chinese_person(rng) -> dict:
    name, he = rng.choice(NAMES)
    return {"name": name, "he": he}


def make_chinese_word_problems(n: int, seed: int) -> list[dict]:
    """`n` distinct Chinese problems drawn from `random.Random(seed)`, as `course_lib.data.draw_problems` draws
    the English ones: same seed, same rows, each with its `kind`."""
    return draw_problems(n, seed, KINDS, chinese_person, final_line)


def bundled_chinese_rows(split: str = "train") -> list[dict]:
    """The Chinese set as orca-math-shaped rows (`question`, `answer`); held-out repeats no train question."""
    return split_rows(split, make_chinese_word_problems, (ZH_TRAIN_SIZE, ZH_TRAIN_SEED),
                      (ZH_HELDOUT_SIZE, ZH_HELDOUT_SEED), spare=50)
