"""The plots draw exactly the numbers they are given: read back from the figure's own lines."""

import matplotlib

matplotlib.use("Agg")

from course_lib import plots  # noqa: E402

LOG_HISTORY = [  # the shape of trainer.state.log_history: one row per logged step, then a summary row
    {"loss": 1.0, "grad_norm": 0.9, "learning_rate": 0.0, "step": 1},
    {"loss": 0.8, "grad_norm": 0.8, "learning_rate": 1e-4, "step": 2},
    {"eval_loss": 0.85, "step": 2},
    {"loss": 0.6, "grad_norm": 0.7, "learning_rate": 2e-4, "step": 3},
    {"train_runtime": 1.0, "train_loss": 0.8, "step": 3},
]


def test_losses_from_history_skips_summary_and_eval_rows():
    assert plots.losses_from_history(LOG_HISTORY) == ([1, 2, 3], [1.0, 0.8, 0.6])


def test_plot_loss_draws_the_logged_losses_their_mean_and_the_held_out_loss():
    figure = plots.plot_loss(LOG_HISTORY, smooth=2)
    lines = {line.get_label(): line for line in figure.axes[0].get_lines()}
    assert list(lines["logged loss"].get_xdata()) == [1, 2, 3]
    assert list(lines["logged loss"].get_ydata()) == [1.0, 0.8, 0.6]
    assert list(lines["mean of 2"].get_ydata()) == [0.9, 0.7]
    assert list(lines["held-out loss"].get_ydata()) == [0.85]


def test_plot_schedule_draws_one_point_per_step_and_marks_the_peak():
    rates = [0.0, 1e-4, 2e-4, 1e-4]
    figure = plots.plot_schedule(rates, warmup_steps=2)
    curve, peak = figure.axes[0].get_lines()
    assert list(curve.get_xdata()) == [1, 2, 3, 4] and list(curve.get_ydata()) == rates
    assert list(peak.get_xdata()) == [3, 3]  # steps 1-2 warm up; step 3 is the first at the peak rate
    assert "2 warm-up steps" in peak.get_label()
    assert len(plots.plot_schedule(rates, warmup_steps=0).axes[0].get_lines()) == 1


def test_eval_losses_and_the_loss_table_pair_each_evaluation_with_the_steps_before_it():
    history = [{"eval_loss": 1.2, "step": 0}, *LOG_HISTORY[:2], {"eval_loss": 0.85, "step": 2}, LOG_HISTORY[3],
               {"eval_loss": 0.7, "step": 3}, LOG_HISTORY[4]]
    assert plots.eval_losses_from_history(history) == ([0, 2, 3], [1.2, 0.85, 0.7])
    column = "training loss (mean since the last evaluation)"
    assert plots.loss_table(history) == [{"step": 0, column: None, "held-out loss": 1.2},
                                         {"step": 2, column: 0.9, "held-out loss": 0.85},
                                         {"step": 3, column: 0.6, "held-out loss": 0.7}]
    assert plots.loss_table(LOG_HISTORY[:2]) == []


# In Chinese: the words are Chinese where a font draws them, and never empty boxes. matplotlib warns
# "Glyph ... missing from font(s) DejaVu Sans" when it draws a character its font lacks: as an error here.

def draw_without_missing_glyphs(figure):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figure.canvas.draw()


def texts(figure):
    from matplotlib.text import Text

    return " ".join(text.get_text() for text in figure.findobj(Text))


def chinese_figures():
    return [plots.plot_loss(LOG_HISTORY, smooth=2), plots.plot_schedule([0.0, 1e-4, 2e-4], warmup_steps=1),
            plots.plot_lengths([100, 120, 300], max_length=256)]


def test_the_check_sees_empty_boxes():
    import matplotlib.pyplot as plt
    import pytest

    figure, ax = plt.subplots()
    ax.set_title("训练损失")  # DejaVu Sans, matplotlib's default, has no Chinese characters
    with pytest.raises(UserWarning, match="Glyph .* missing"):
        draw_without_missing_glyphs(figure)


def test_in_chinese_with_a_chinese_font_the_plots_speak_chinese(monkeypatch, capsys):
    import os

    import pytest

    from course_lib.language import LANGUAGE_ENV

    if plots.chinese_font() is None:
        if os.environ.get("ERNIE_COURSE_FONTS") == "required":  # .ci/run installs fonts-wqy-zenhei
            pytest.fail(f"no font of {plots.CJK_FONTS} is installed")
        pytest.skip("no Chinese font installed (Debian: apt-get install fonts-wqy-zenhei)")
    monkeypatch.setenv(LANGUAGE_ENV, "zh")
    for figure in chinese_figures():
        draw_without_missing_glyphs(figure)
    loss, schedule, lengths = chinese_figures()
    assert loss.axes[0].get_title() == "训练损失与留出集损失"
    assert {line.get_label() for line in loss.axes[0].get_lines()} == {"记录的损失", "2 点平均", "留出集损失"}
    assert schedule.axes[0].get_xlabel() == "优化器步数" and "峰值，在 1 步预热之后" in texts(schedule)
    assert lengths.axes[0].get_title() == "每个样本的 token 数" and "max_length = 256" in texts(lengths)
    assert plots.FONT_HINT not in capsys.readouterr().out


def test_in_chinese_without_a_chinese_font_the_plots_stay_english_and_say_how_to_get_one(monkeypatch, capsys):
    from course_lib.language import LANGUAGE_ENV

    monkeypatch.setenv(LANGUAGE_ENV, "zh")
    monkeypatch.setattr(plots, "chinese_font", lambda: None)
    monkeypatch.setattr(plots, "_hint_shown", False)
    for figure in chinese_figures():
        draw_without_missing_glyphs(figure)
    assert plots.plot_loss(LOG_HISTORY).axes[0].get_title() == "Training and held-out loss"
    printed = capsys.readouterr().out
    assert printed.count(plots.FONT_HINT) == 1  # once a kernel, not once a plot
    assert "!apt-get install -y fonts-noto-cjk" in printed and "字体" in printed


def test_the_loss_table_has_chinese_columns(monkeypatch):
    from course_lib.language import LANGUAGE_ENV

    monkeypatch.setenv(LANGUAGE_ENV, "zh")
    assert list(plots.loss_table(LOG_HISTORY)[0]) == ["步数", "训练损失（上次评估以来的平均值）", "留出集损失"]
