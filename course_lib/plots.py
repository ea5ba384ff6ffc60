"""The course's plots. Each returns its matplotlib Figure; Jupyter draws it once at the end of the cell, so assign
it (`figure = plot_loss(...)`) rather than leave it as the cell's value, which would draw it twice. Nothing is
saved unless asked.

In Chinese (`language.set_language("zh")`) the titles, axes and legends are Chinese when matplotlib has a font
with Chinese characters (its own DejaVu Sans has none: it would draw empty boxes). When there is none, they stay
English and one line says how to install a font; `chinese_font()` looks again at every plot, so a font installed
meanwhile is used from the next plot on, without restarting the kernel.
"""

from __future__ import annotations

import functools

from course_lib.language import language, tr

# Families with Chinese characters, most wanted first: Noto Sans CJK (Debian/Colab: fonts-noto-cjk; matplotlib
# reads the first face of its .ttc, the JP one, which draws Chinese too), Source Han Sans (the same font under
# Adobe's name), WenQuanYi (fonts-wqy-zenhei, fonts-wqy-microhei), then Windows' and macOS' own.
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN", "Noto Sans CJK JP",
             "Noto Sans CJK TC", "Source Han Sans", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "SimHei",
             "Microsoft YaHei", "PingFang SC", "Heiti SC", "Hiragino Sans GB", "Arial Unicode MS",
             "Droid Sans Fallback")
FONT_HINT = ("图中的文字仍用英文：matplotlib 找不到含汉字的字体（用它自带的字体，汉字会显示成方框）。"
             "在 Colab 上运行 `!apt-get install -y fonts-noto-cjk`，然后重新运行画图的单元格即可，无需重启"
             "（course_lib.plots 每次画图都会重新查找字体）；在自己的电脑上，安装 Noto Sans CJK SC 或文泉驿正黑"
             "（Debian/Ubuntu：fonts-noto-cjk 或 fonts-wqy-zenhei）。")
_hint_shown = False


def chinese_font() -> tuple[str, str] | None:
    """(family, file) of the first installed font of CJK_FONTS that matplotlib can use, or None. Fonts installed
    after matplotlib built its font list (e.g. by apt-get in a running Colab) are added to it first."""
    from matplotlib import font_manager

    def find():
        by_name = {entry.name: entry.fname for entry in font_manager.fontManager.ttflist}
        return next(((name, by_name[name]) for name in CJK_FONTS if name in by_name), None)

    found = find()
    if found is None:
        known = {entry.fname for entry in font_manager.fontManager.ttflist}
        for path in font_manager.findSystemFonts():
            if path not in known:
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):  # a file FreeType cannot read
                    pass
        found = find()
    return found


@functools.lru_cache(maxsize=4)
def _font_file(path: str):
    from matplotlib.ft2font import FT2Font

    return FT2Font(path)


def draws(font_file: str, text: str) -> bool:
    """Whether the font in `font_file` has a glyph for every character of `text` but spaces."""
    font = _font_file(font_file)
    return all(font.get_char_index(ord(char)) for char in text if not char.isspace())


class _Labels:
    """The words of one figure: Chinese when the course speaks it and a font draws them, else English."""

    def __init__(self):
        global _hint_shown
        self.font = chinese_font() if language() == "zh" else None
        if language() == "zh" and self.font is None and not _hint_shown:
            print(FONT_HINT)
            _hint_shown = True

    def __call__(self, english: str, chinese: str) -> str:
        return chinese if self.font and draws(self.font[1], chinese) else english

    def apply(self, fig):
        """Every text of `fig` in the Chinese font, DejaVu Sans (matplotlib's own) for what it lacks."""
        if self.font:
            from matplotlib.text import Text

            for text in fig.findobj(Text):
                text.set_fontfamily([self.font[0], "DejaVu Sans"])
        return fig


def _axes(title: str, xlabel: str, ylabel: str):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    return fig, ax


def losses_from_history(log_history: list[dict]) -> tuple[list[int], list[float]]:
    """(steps, training losses) from `trainer.state.log_history`, leaving out the final summary row."""
    rows = [row for row in log_history if "loss" in row and "step" in row]
    return [row["step"] for row in rows], [float(row["loss"]) for row in rows]


def eval_losses_from_history(log_history: list[dict]) -> tuple[list[int], list[float]]:
    """(steps, held-out losses) of the trainer's evaluations (`eval_strategy`), step 0 being `eval_on_start`."""
    rows = [row for row in log_history if "eval_loss" in row]
    return [row["step"] for row in rows], [float(row["eval_loss"]) for row in rows]


def loss_table(log_history: list[dict]) -> list[dict]:
    """One row per evaluation: its step, the held-out loss, and the mean training loss of the steps since the
    evaluation before (None at step 0): a fair pair, since a single step's loss rests on one batch."""
    steps, losses = losses_from_history(log_history)
    rows, previous = [], 0
    for step, eval_loss in zip(*eval_losses_from_history(log_history)):
        since = [loss for s, loss in zip(steps, losses) if previous < s <= step]
        rows.append({tr("step", "步数"): step,
                     tr("training loss (mean since the last evaluation)", "训练损失（上次评估以来的平均值）"):
                     sum(since) / len(since) if since else None, tr("held-out loss", "留出集损失"): eval_loss})
        previous = step
    return rows


def plot_loss(log_history: list[dict], smooth: int = 5):
    """Training loss per logged step, with a running mean over `smooth` points to show the trend, and the
    held-out loss of each evaluation when the trainer made some."""
    steps, losses = losses_from_history(log_history)
    say = _Labels()
    fig, ax = _axes(say("Training and held-out loss", "训练损失与留出集损失"), say("step", "步数"),
                    say("loss (answer tokens only)", "损失（只计答案 token）"))
    ax.plot(steps, losses, marker=".", alpha=0.5, label=say("logged loss", "记录的损失"))
    if len(losses) >= smooth:
        means = [sum(losses[i - smooth + 1:i + 1]) / smooth for i in range(smooth - 1, len(losses))]
        ax.plot(steps[smooth - 1:], means, linewidth=2, label=say(f"mean of {smooth}", f"{smooth} 点平均"))
    eval_steps, eval_losses = eval_losses_from_history(log_history)
    if eval_steps:
        ax.plot(eval_steps, eval_losses, marker="o", label=say("held-out loss", "留出集损失"))
    ax.legend()
    return say.apply(fig)


def plot_schedule(learning_rates: list[float], warmup_steps: int):
    """The learning rate at every optimizer step, as the trainer's own scheduler produces it."""
    say = _Labels()
    fig, ax = _axes(say("Learning-rate schedule", "学习率调度"), say("optimizer step", "优化器步数"),
                    say("learning rate", "学习率"))
    ax.plot(range(1, len(learning_rates) + 1), learning_rates, marker="." if len(learning_rates) <= 100 else None)
    if warmup_steps:  # warm-up takes steps 1..warmup_steps; the next step is the first at the peak rate
        ax.axvline(warmup_steps + 1, linestyle="--", color="grey",
                   label=say(f"peak, after {warmup_steps} warm-up steps", f"峰值，在 {warmup_steps} 步预热之后"))
        ax.legend()
    return say.apply(fig)


def plot_lengths(lengths: list[int], max_length: int):
    """How many tokens each example has, against the max_length that truncates them."""
    say = _Labels()
    fig, ax = _axes(say("Tokens per example", "每个样本的 token 数"), say("tokens", "token 数"),
                    say("examples", "样本数"))
    ax.hist(lengths, bins=40)
    ax.axvline(max_length, color="red", linestyle="--", label=f"max_length = {max_length}")
    ax.legend()
    return say.apply(fig)
